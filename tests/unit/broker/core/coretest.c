/* coretest.c — see coretest.h. */
#include "coretest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runnel/batch.h"
#include "testutil.h"

void ct_init(ct_t *t) {
  memset(t, 0, sizeof(*t));
  t->dir = rn_test_tmpdir();
  assert_int_equal(uv_loop_init(&t->loop), 0);
}

static void quiet(void *arg, rn_log_level_t level, const char *msg) {
  (void)arg;
  if (level >= RN_LOG_WARN) fprintf(stderr, "core: %s\n", msg);
}

void ct_open(ct_t *t) {
  rn_core_opts_t o;
  rn_core_opts_default(&o);
  o.loop = &t->loop;
  o.data_dir = t->dir;
  o.fs = t->fs;
  o.meta_store = t->meta;
  o.logger = quiet;
  char why[512];
  rn_err_t err = rn_core_open(&o, &t->core, why, sizeof why);
  if (err) fail_msg("rn_core_open: %s", why);
}

void ct_close(ct_t *t) {
  assert_int_equal(rn_core_close(t->core), 0);
  t->core = NULL;
  uv_run(&t->loop, UV_RUN_NOWAIT);
}

void ct_fini(ct_t *t) {
  if (t->core) ct_close(t);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  rn_test_rmtree(t->dir);
  free(t->dir);
}

void ct_run_until(ct_t *t, const bool *done) {
  while (!*done) uv_run(&t->loop, UV_RUN_ONCE);
}

typedef struct errw {
  bool done;
  rn_err_t err;
} errw_t;

static void on_create(void *ctx, const rn_core_create_result_t *r) {
  errw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (r->err == 0) assert_non_null(r->stream);
  else assert_non_null(r->msg);
}

rn_err_t ct_create(ct_t *t, const char *name, uint32_t shards) {
  errw_t w = {0};
  rn_core_create_req_t req = {.name = name, .shard_count = shards, .durability = RN_DURABILITY_SYNC};
  rn_core_create_stream(t->core, &req, on_create, &w);
  ct_run_until(t, &w.done);
  return w.err;
}

static void on_delete(void *ctx, const rn_core_delete_result_t *r) {
  errw_t *w = ctx;
  w->done = true;
  w->err = r->err;
}

rn_err_t ct_delete(ct_t *t, const char *name) {
  errw_t w = {0};
  rn_core_delete_req_t req = {.name = name};
  rn_core_delete_stream(t->core, &req, on_delete, &w);
  ct_run_until(t, &w.done);
  return w.err;
}

typedef struct descw {
  bool done;
  ct_desc_t *out;
} descw_t;

static void on_describe(void *ctx, const rn_core_describe_result_t *r) {
  descw_t *w = ctx;
  w->done = true;
  w->out->err = r->err;
  if (r->err) return;
  const rn_core_stream_desc_t *d = r->stream;
  w->out->nshards = d->nshards;
  w->out->retention_ms = d->retention_ms;
  w->out->state = d->state;
  for (uint32_t i = 0; i < d->nshards && i < 16; i++) {
    w->out->shards[i] = d->shards[i];
    memcpy(w->out->parents[i], d->shards[i].parents ? d->shards[i].parents : (const uint32_t[2]){0, 0},
           d->shards[i].nparents * sizeof(uint32_t));
    memcpy(w->out->children[i], d->shards[i].children ? d->shards[i].children : (const uint32_t[2]){0, 0},
           d->shards[i].nchildren * sizeof(uint32_t));
    w->out->shards[i].parents = NULL; /* borrowed: copied above */
    w->out->shards[i].children = NULL;
  }
}

void ct_describe(ct_t *t, const char *name, ct_desc_t *out) {
  memset(out, 0, sizeof(*out));
  descw_t w = {.out = out};
  rn_core_describe_req_t req = {.name = name};
  rn_core_describe_stream(t->core, &req, on_describe, &w);
  ct_run_until(t, &w.done);
}

typedef struct prodw {
  bool done;
  rn_err_t err;
  uint64_t base;
} prodw_t;

static void on_produce(void *ctx, const rn_core_produce_result_t *r) {
  prodw_t *w = ctx;
  w->done = true;
  w->err = r->err;
  if (!r->err) {
    assert_int_equal(r->nresults, 1);
    w->err = r->results[0].err;
    w->base = r->results[0].base_offset;
  }
}

rn_err_t ct_produce(ct_t *t, const char *stream, uint32_t shard, int n, int64_t ts0, uint64_t *base) {
  rn_batch_builder_t b;
  rn_batch_builder_init(&b);
  for (int i = 0; i < n; i++) {
    rn_record_t rec = {0};
    rec.timestamp = ts0 + i;
    rec.value = (const uint8_t *)"value";
    rec.value_len = 5;
    assert_int_equal(rn_batch_builder_add(&b, &rec), 0);
  }
  const uint8_t *bytes;
  size_t len;
  assert_int_equal(rn_batch_builder_finish(&b, RN_CODEC_NONE, NULL, &bytes, &len), 0);
  rn_core_batch_in_t in = {.shard = shard, .data = bytes, .len = len};
  rn_core_produce_req_t req = {.stream = stream, .batches = &in, .nbatches = 1};
  prodw_t w = {0};
  rn_core_produce(t->core, &req, on_produce, &w);
  rn_batch_builder_free(&b); /* borrowed during the call only */
  ct_run_until(t, &w.done);
  if (base) *base = w.base;
  return w.err;
}

typedef struct offw {
  bool done;
  ct_offsets_t *out;
} offw_t;

static void on_offsets(void *ctx, const rn_core_offsets_result_t *r) {
  offw_t *w = ctx;
  w->done = true;
  w->out->err = r->err;
  if (r->err) return;
  assert_int_equal(r->nshards, 1);
  w->out->shard_err = r->shards[0].err;
  w->out->offset = r->shards[0].offset;
  w->out->start = r->shards[0].start_offset;
  w->out->end = r->shards[0].end_offset;
}

void ct_list_offset(ct_t *t, const char *stream, uint32_t shard, rn_core_pos_kind_t kind, int64_t value, ct_offsets_t *out) {
  memset(out, 0, sizeof(*out));
  rn_core_shard_pos_t pos = {.shard = shard, .kind = kind, .value = value};
  rn_core_offsets_req_t req = {.stream = stream, .shards = &pos, .nshards = 1};
  offw_t w = {.out = out};
  rn_core_list_offsets(t->core, &req, on_offsets, &w);
  ct_run_until(t, &w.done);
}
