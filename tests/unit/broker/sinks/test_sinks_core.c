/*
 * test_sinks_core.c — archive sinks over an in-process core (coretest) and
 * a local-directory store behind the fault-injecting wrapper:
 *   - every record lands in exactly one object, named after its shard and
 *     the object's first and last offsets, partitioned by a field;
 *   - a record that is not JSON goes to the error prefix with its reason;
 *   - an outage stalls the sink (retrying, lag kept) and it catches up after,
 *     still exactly once; PUTs whose answers are lost are retried under the
 *     same keys;
 *   - a flush pending at a restart is redone with exactly its range;
 *   - create refuses what it cannot run, with the field named.
 * No sleeps: the loop runs until a condition holds (core's tick keeps it
 * turning), bounded by a count of loop turns.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <zlib.h>

#include "../core/coretest.h"
#include "rn_sinks.h"
#include "rn_tier.h"

typedef struct fx {
  ct_t t;                 /* first: ct_teardown frees the fixture */
  char store_dir[512];
  rn_objstore_t *store;   /* faulty(localdir) */
  rn_sinks_t *ss;
} fx_t;

static void fx_open(fx_t *f) {
  ct_open(&f->t);
  rn_sinks_opts_t o;
  rn_sinks_opts_default(&o);
  o.store = f->store;
  o.retry_ms = 5;
  o.poll_ms = 20;
  char why[256];
  assert_int_equal(rn_sinks_open(f->t.core, &o, &f->ss, why, sizeof why), 0);
}

/* As runneld stops: drain, let what is in flight finish, close. */
static void fx_close(fx_t *f) {
  rn_core_drain(f->t.core);
  for (int turns = 0; !rn_core_idle(f->t.core); turns++) {
    assert_true(turns < 1000000);
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
  ct_close(&f->t);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  ct_init(&f->t);
  snprintf(f->store_dir, sizeof f->store_dir, "%s/store", f->t.dir);
  rn_objstore_t *inner;
  char why[256];
  assert_int_equal(rn_localdir_new(f->store_dir, &inner, why, sizeof why), 0);
  rn_faulty_opts_t fo = {0};
  assert_int_equal(rn_faulty_new(inner, &fo, &f->store), 0);
  fx_open(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->t.core) fx_close(f);
  /* the store after core: sinks' PUTs are done or cancelled by then */
  rn_objstore_destroy(f->store);
  return ct_teardown(state);
}

/* ---- helpers ---- */

typedef struct reply {
  bool done;
  rn_err_t err;
  char msg[512];
  uint64_t lag, records, errors, objects, put_failures;
  bool pending;
  uint64_t pfirst, plast;
  char state[32];
} reply_t;

static void on_reply(void *ctx, const rn_sink_reply_t *r) {
  reply_t *w = ctx;
  w->done = true;
  w->err = r->err;
  snprintf(w->msg, sizeof w->msg, "%s", r->message ? r->message : "");
  if (r->sink) {
    w->lag = w->records = w->errors = w->objects = w->put_failures = 0;
    w->pending = false;
    for (size_t i = 0; i < r->sink->n_shards; i++) {
      const rn_sink_shard_info_t *s = &r->sink->shards[i];
      w->lag += s->lag_records;
      w->records += s->records;
      w->errors += s->error_records;
      w->objects += s->objects;
      w->put_failures += s->put_failures;
      if (s->pending) {
        w->pending = true;
        w->pfirst = s->pending_first;
        w->plast = s->pending_last;
      }
      snprintf(w->state, sizeof w->state, "%s", s->state);
    }
  }
}

static rn_err_t create(fx_t *f, const rn_sink_config_t *c, reply_t *w) {
  memset(w, 0, sizeof *w);
  rn_sinks_create(f->ss, c, on_reply, w);
  ct_run_until(&f->t, &w->done);
  return w->err;
}

static void describe(fx_t *f, const char *name, reply_t *w) {
  memset(w, 0, sizeof *w);
  rn_sinks_describe(f->ss, name, on_reply, w);
  assert_true(w->done); /* answered from memory */
  assert_int_equal(w->err, 0);
}

/* Run the loop until the sink's lag is 0 and `want` records were placed
 * (data or error objects). Bounded by loop turns, not by time. */
static void run_caught_up(fx_t *f, const char *name, uint64_t want) {
  reply_t w;
  for (int turns = 0; turns < 200000; turns++) {
    describe(f, name, &w);
    if (w.lag == 0 && w.records + w.errors >= want && !w.pending) return;
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
  fail_msg("sink %s did not catch up: lag %llu, records %llu", name, (unsigned long long)w.lag,
           (unsigned long long)w.records);
}

typedef struct prodw {
  bool done;
  rn_err_t err;
} prodw_t;
static void on_prod(void *ctx, const rn_core_produce_result_t *r) {
  prodw_t *w = ctx;
  w->done = true;
  w->err = r->err ? r->err : r->nresults ? r->results[0].err : 0;
}

/* Records ids [from, from + n) as {"id":N,"kind":"a"|"b"} to shard (one
 * batch), or the raw text `raw` as one record when not NULL. */
static void produce(fx_t *f, uint32_t shard, int from, int n, const char *raw) {
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  char v[64];
  for (int i = 0; i < (raw ? 1 : n); i++) {
    if (raw)
      snprintf(v, sizeof v, "%s", raw);
    else
      snprintf(v, sizeof v, "{\"id\":%d,\"kind\":\"%s\"}", from + i, (from + i) % 2 ? "a" : "b");
    rn_record_t rec = {.timestamp = 1000 + i, .key = (const uint8_t *)"k", .key_len = 1,
                       .value = (const uint8_t *)v, .value_len = strlen(v)};
    assert_int_equal(rn_batch_builder_add(&b, &rec), 0);
  }
  const uint8_t *bytes;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &bytes, &len), 0);
  rn_core_batch_in_t in = {.shard = shard, .data = bytes, .len = len};
  rn_core_produce_req_t req = {.stream = "ev", .batches = &in, .nbatches = 1};
  prodw_t w = {0};
  rn_core_produce(f->t.core, &req, on_prod, &w);
  rn_batch_builder_free(&b);
  ct_run_until(&f->t, &w.done);
  assert_int_equal(w.err, 0);
}

/* ---- what the store holds ---- */

typedef struct seen {
  int count[4096];       /* per id: lines seen in data objects */
  int objects, error_objects, error_lines;
  char error_text[4096];
  char keys[256][1024];
  int nkeys;
} seen_t;

static void read_object(seen_t *s, const char *path, const char *rel) {
  gzFile g = gzopen(path, "rb"); /* reads plain files too */
  assert_non_null(g);
  char line[4096];
  bool err = strstr(rel, "errors/") == rel;
  while (gzgets(g, line, sizeof line)) {
    if (err) {
      s->error_lines++;
      snprintf(s->error_text, sizeof s->error_text, "%s", line);
      continue;
    }
    int id;
    assert_int_equal(sscanf(line, "{\"id\":%d", &id), 1);
    assert_true(id >= 0 && id < 4096);
    s->count[id]++;
    /* partitioned by kind */
    assert_non_null(strstr(rel, id % 2 ? "kind=a/" : "kind=b/"));
  }
  gzclose(g);
  if (err)
    s->error_objects++;
  else
    s->objects++;
}

static void walk(seen_t *s, const char *root, const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char r2[1024], p2[1100];
    snprintf(r2, sizeof r2, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    snprintf(p2, sizeof p2, "%s/%s", root, r2);
    struct stat st;
    assert_int_equal(stat(p2, &st), 0);
    if (S_ISDIR(st.st_mode)) {
      walk(s, root, r2);
    } else {
      /* <prefix>lake-shardId-%012u-%020llu-%020llu.<ext> */
      const char *base = strrchr(r2, '/') ? strrchr(r2, '/') + 1 : r2;
      unsigned sh;
      unsigned long long a, b;
      assert_int_equal(sscanf(base, "lake-shardId-%12u-%20llu-%20llu.", &sh, &a, &b), 3);
      assert_true(a <= b);
      if (s->nkeys < 256) snprintf(s->keys[s->nkeys++], sizeof s->keys[0], "%s", r2);
      read_object(s, p2, r2);
    }
  }
  closedir(d);
}

static void check_exactly_once(fx_t *f, int n, seen_t *s) {
  memset(s, 0, sizeof *s);
  walk(s, f->store_dir, "");
  for (int i = 0; i < n; i++)
    if (s->count[i] != 1) fail_msg("record id %d is in %d objects (want exactly 1)", i, s->count[i]);
}

static rn_sink_config_t lake_config(void) {
  rn_sink_config_t c = {.name = "lake",
                        .stream = "ev",
                        .destination = "file:///unused/", /* opts.store is used */
                        .format = RN_SINK_NDJSON,
                        .prefix = "kind=!{field:kind}/",
                        .buffer_bytes = 64 << 10,
                        .buffer_interval_ms = 10};
  return c;
}

/* ---- tests ---- */

static void test_exactly_once_partitioned(void **state) {
  fx_t *f = *state;
  assert_int_equal(ct_create(&f->t, "ev", 2), 0);
  reply_t w;
  rn_sink_config_t c = lake_config();
  assert_int_equal(create(f, &c, &w), 0);
  int id = 0;
  for (int round = 0; round < 6; round++)
    for (uint32_t sh = 0; sh < 2; sh++, id += 50) produce(f, sh, id, 50, NULL);
  produce(f, 1, 0, 0, "not json {");
  run_caught_up(f, "lake", (uint64_t)id + 1);
  seen_t *s = calloc(1, sizeof *s);
  check_exactly_once(f, id, s);
  assert_int_equal(s->error_lines, 1);
  assert_non_null(strstr(s->error_text, "\"reason\":\"invalid JSON"));
  assert_non_null(strstr(s->error_text, "\"data_base64\":\"bm90IGpzb24gew==\""));
  describe(f, "lake", &w);
  assert_int_equal(w.records, (uint64_t)id);
  assert_int_equal(w.errors, 1);
  free(s);
}

static void test_outage_then_catch_up(void **state) {
  fx_t *f = *state;
  assert_int_equal(ct_create(&f->t, "ev", 1), 0);
  reply_t w;
  rn_sink_config_t c = lake_config();
  assert_int_equal(create(f, &c, &w), 0);
  produce(f, 0, 0, 100, NULL);
  run_caught_up(f, "lake", 100);
  rn_faulty_opts_t down = {.down = true};
  rn_faulty_set(f->store, &down);
  produce(f, 0, 100, 100, NULL);
  /* until a PUT failed and the shard waits to retry; nothing moves */
  for (int turns = 0;; turns++) {
    describe(f, "lake", &w);
    if (w.put_failures > 0 && strcmp(w.state, "retrying") == 0) break;
    assert_true(turns < 200000);
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
  assert_int_equal(w.lag, 100);
  assert_true(w.pending);
  /* lost answers: the PUTs reach the store but report failure, so they are
   * retried under the same keys */
  rn_faulty_opts_t lossy = {.lose_put_response = true};
  rn_faulty_set(f->store, &lossy);
  for (int turns = 0;; turns++) {
    describe(f, "lake", &w);
    if (w.put_failures > 3) break;
    assert_true(turns < 200000);
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
  rn_faulty_opts_t up = {0};
  rn_faulty_set(f->store, &up);
  produce(f, 0, 200, 100, NULL);
  run_caught_up(f, "lake", 300);
  seen_t *s = calloc(1, sizeof *s);
  check_exactly_once(f, 300, s);
  free(s);
}

static void test_pending_range_redone_after_restart(void **state) {
  fx_t *f = *state;
  assert_int_equal(ct_create(&f->t, "ev", 1), 0);
  reply_t w;
  rn_sink_config_t c = lake_config();
  assert_int_equal(create(f, &c, &w), 0);
  rn_faulty_opts_t down = {.down = true};
  rn_faulty_set(f->store, &down);
  produce(f, 0, 0, 40, NULL);
  for (int turns = 0;; turns++) {
    describe(f, "lake", &w);
    if (w.pending && w.put_failures > 0) break;
    assert_true(turns < 200000);
    uv_run(&f->t.loop, UV_RUN_ONCE);
  }
  uint64_t pf = w.pfirst, pl = w.plast;
  assert_int_equal(pf, 0);
  assert_int_equal(pl, 39);
  /* more records after the pending range, then a restart */
  produce(f, 0, 40, 40, NULL);
  fx_close(f);
  rn_faulty_opts_t up = {0};
  rn_faulty_set(f->store, &up);
  fx_open(f);
  describe(f, "lake", &w);
  assert_true(w.pending);
  assert_int_equal(w.pfirst, pf);
  assert_int_equal(w.plast, pl);
  run_caught_up(f, "lake", 80);
  seen_t *s = calloc(1, sizeof *s);
  check_exactly_once(f, 80, s);
  /* the first flush's objects end at exactly the pending range's last offset */
  bool found = false;
  for (int i = 0; i < s->nkeys; i++) found |= strstr(s->keys[i], "-00000000000000000039.ndjson.gz") != NULL;
  assert_true(found);
  free(s);
}

static void test_create_refusals(void **state) {
  fx_t *f = *state;
  assert_int_equal(ct_create(&f->t, "ev", 1), 0);
  reply_t w;
  rn_sink_config_t c = lake_config();
  c.stream = "nope";
  assert_int_equal(create(f, &c, &w), RN_ENOSTREAM);
  c = lake_config();
  c.format = RN_SINK_PARQUET;
  assert_int_equal(create(f, &c, &w), RN_EINVAL);
  assert_non_null(strstr(w.msg, "needs a schema"));
  c.schema = "columns:\n  - {name: a, type: strng}\n";
  assert_int_equal(create(f, &c, &w), RN_EINVAL);
  assert_non_null(strstr(w.msg, "strng"));
  c = lake_config();
  c.prefix = "x=!{nope}/";
  assert_int_equal(create(f, &c, &w), RN_EINVAL);
  c = lake_config();
  c.compression = RN_SINK_COMP_ZSTD;
  assert_int_equal(create(f, &c, &w), RN_EINVAL);
  c = lake_config();
  c.buffer_bytes = 10;
  assert_int_equal(create(f, &c, &w), RN_EINVAL);
  c = lake_config();
  assert_int_equal(create(f, &c, &w), 0);
  assert_int_equal(create(f, &c, &w), RN_EEXIST);
  memset(&w, 0, sizeof w);
  rn_sinks_describe(f->ss, "other", on_reply, &w);
  assert_int_equal(w.err, RN_ENOSINK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_exactly_once_partitioned, setup, teardown),
      cmocka_unit_test_setup_teardown(test_outage_then_catch_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_range_redone_after_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
