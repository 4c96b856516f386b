/*
 * test_tier.c — tiered storage below the broker: the manifest codec and
 * state, the local-directory store and the fault injector, and a tiered
 * shard end to end on a real log and a local-directory bucket (uploads,
 * local and total retention, reads of every record back from the bucket,
 * time lookups, a corrupt object never served, an outage that grows the
 * backlog and drains, restore onto an empty directory, stream-delete jobs,
 * the collector).
 *
 * No sleeps: every wait blocks in poll() on the io's and the store's fds
 * until the condition holds (bounded by a count of rounds, not a time).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../../../storage/tier/tier_int.h"
#include "logtest.h"
#include "rn_tier.h"
#include "testutil.h"

/* ==== the manifest ========================================================== */

static void test_manifest_codec(void **state) {
  (void)state;
  rn_mf_rec_t recs[] = {
      {RN_MF_STARTED, 0, 100, 4096, 1234, 0},  {.type = RN_MF_UPLOADED, .base = 0},
      {RN_MF_STARTED, 100, 250, 8192, 1300, 3}, {.type = RN_MF_UPLOADED, .base = 100},
      {RN_MF_STARTED, 250, 260, 99, 1400, 3},   {.type = RN_MF_START, .base = 100},
      {.type = RN_MF_DELETED, .base = 0},
  };
  uint8_t buf[1024];
  size_t len = 0;
  for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
    size_t n = rn_mf_encode(&recs[i], buf + len);
    assert_true(n > 0 && n <= RN_MF_REC_MAX);
    rn_mf_rec_t back;
    size_t used;
    assert_int_equal(rn_mf_decode(buf + len, n, &back, &used), 0);
    assert_int_equal(used, n);
    assert_int_equal(back.type, recs[i].type);
    assert_int_equal(back.base, recs[i].base);
    assert_int_equal(back.next, recs[i].next);
    assert_int_equal(back.epoch, recs[i].epoch);
    assert_int_equal(rn_mf_decode(buf + len, n - 1, &back, &used), RN_EPARTIAL);
    len += n;
  }
  rn_mf_t m = {0};
  size_t valid;
  char why[200];
  assert_int_equal(rn_mf_parse(&m, buf, len, &valid, why, sizeof(why)), 0);
  assert_int_equal(valid, len);
  assert_int_equal(m.n, 2);
  assert_int_equal(m.start, 100);
  assert_int_equal(m.segs[0].base, 100);
  assert_true(m.segs[0].uploaded);
  assert_false(m.segs[1].uploaded);
  assert_int_equal(rn_mf_uploaded_end(&m), 250);
  assert_non_null(rn_mf_find(&m, 249));
  assert_null(rn_mf_find(&m, 99));
  assert_null(rn_mf_find(&m, 260));

  /* The snapshot rebuilds the same state. */
  uint8_t *snap;
  size_t sl;
  assert_int_equal(rn_mf_snapshot(&m, &snap, &sl), 0);
  rn_mf_t m2 = {0};
  assert_int_equal(rn_mf_parse(&m2, snap, sl, &valid, why, sizeof(why)), 0);
  assert_int_equal(m2.n, m.n);
  assert_int_equal(m2.start, m.start);
  assert_memory_equal(m2.segs, m.segs, m.n * sizeof(*m.segs));
  free(snap);
  rn_mf_free(&m2);

  /* A torn last write is cut off; damage further from the end is refused. */
  rn_mf_t m3 = {0};
  assert_int_equal(rn_mf_parse(&m3, buf, len - 3, &valid, why, sizeof(why)), 0);
  assert_true(valid < len - 3);
  rn_mf_free(&m3);
  uint8_t bad[2048];
  memcpy(bad, buf, len);
  size_t blen = len;
  for (int i = 0; i < 40; i++) blen += rn_mf_encode(&(rn_mf_rec_t){.type = RN_MF_START, .base = 200 + (uint64_t)i}, bad + blen);
  assert_true(blen - 5 > RN_MF_TAIL_MAX);
  bad[5] ^= 1; /* inside the first record, far from the end */
  rn_mf_t m4 = {0};
  assert_int_equal(rn_mf_parse(&m4, bad, blen, &valid, why, sizeof(why)), RN_ECORRUPT);
  rn_mf_free(&m4);

  /* Contradictions are refused. */
  rn_mf_t m5 = {0};
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){.type = RN_MF_UPLOADED, .base = 7}, why, sizeof(why)), RN_ECORRUPT);
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){RN_MF_STARTED, 0, 10, 1, 0, 0}, why, sizeof(why)), 0);
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){RN_MF_STARTED, 10, 20, 1, 0, 0}, why, sizeof(why)), RN_ECORRUPT);
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){RN_MF_STARTED, 0, 12, 1, 0, 0}, why, sizeof(why)), 0); /* restarted */
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){.type = RN_MF_UPLOADED, .base = 0}, why, sizeof(why)), 0);
  assert_int_equal(rn_mf_apply(&m5, &(rn_mf_rec_t){RN_MF_STARTED, 5, 20, 1, 0, 0}, why, sizeof(why)), RN_ECORRUPT);
  assert_int_equal(m5.segs[0].next, 12);
  rn_mf_free(&m5);
  rn_mf_free(&m);
  uint8_t junk[4] = {9, 1, 8, 0};
  rn_mf_rec_t r;
  size_t used;
  assert_int_equal(rn_mf_decode(junk, sizeof(junk), &r, &used), RN_ECORRUPT);
}

/* ==== stores ================================================================= */

typedef struct res {
  int done;
  rn_obj_result_t r;
  uint8_t *data;
  size_t len;
  char keys[32][128];
  size_t nkeys;
} res_t;

static void obj_cb(void *arg, const rn_obj_result_t *r) {
  res_t *x = arg;
  x->r = *r;
  x->done++;
}
static void get_cb(void *arg, const rn_obj_result_t *r, uint8_t *data, size_t len) {
  res_t *x = arg;
  x->r = *r;
  x->data = data;
  x->len = len;
  x->done++;
}
static void list_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  res_t *x = arg;
  x->r = *r;
  x->nkeys = n;
  for (size_t i = 0; i < n && i < 32; i++) snprintf(x->keys[i], sizeof(x->keys[i]), "%s", e[i].key);
  x->done++;
}

static void wait_done(rn_objstore_t *os, res_t *x) {
  for (int i = 0; i < 100000 && !x->done; i++) rn_objstore_wait(os, 1000);
  assert_int_equal(x->done, 1);
}

static void store_checks(rn_objstore_t *os, const char *root) {
  res_t x = {0};
  const uint8_t hello[] = "hello, bucket";
  assert_int_equal(rn_objstore_put_mem(os, "a/b/c.log", hello, sizeof(hello), obj_cb, &x), 0);
  wait_done(os, &x);
  if (x.r.err) fprintf(stderr, "put: %s\n", x.r.message);
  assert_int_equal(x.r.err, 0);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(os, "a/b/c.log", 7, 6, get_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  assert_int_equal(x.len, 6);
  assert_memory_equal(x.data, "bucket", 6);
  assert_int_equal(x.r.object_size, sizeof(hello));
  free(x.data);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(os, "a/b/c.log", 0, 0, get_cb, &x), 0); /* to the end */
  wait_done(os, &x);
  assert_int_equal(x.len, sizeof(hello));
  free(x.data);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(os, "a/b/c.log", 10, 100, get_cb, &x), 0); /* past the end */
  wait_done(os, &x);
  assert_int_equal(x.r.err, RN_ECORRUPT);
  assert_null(x.data);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(os, "a/missing", 0, 0, get_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, RN_ENOENT);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_head(os, "a/b/c.log", obj_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  assert_int_equal(x.r.object_size, sizeof(hello));
  assert_true(x.r.mtime_ms > 0);

  /* put_file: the first len bytes of a file. */
  char path[600];
  snprintf(path, sizeof(path), "%.500s/../src-file", root);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  for (int i = 0; i < 100000; i++) fputc(i & 0xff, f);
  fclose(f);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_put_file(os, "a/file", path, 70000, obj_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_put_file(os, "a/toolong", path, 200000, obj_cb, &x), 0);
  wait_done(os, &x);
  assert_int_not_equal(x.r.err, 0); /* the file is shorter than asked */
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_list(os, "a/", list_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  assert_int_equal(x.nkeys, 2); /* sorted; no temporary files; not a/toolong */
  assert_string_equal(x.keys[0], "a/b/c.log");
  assert_string_equal(x.keys[1], "a/file");
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_list(os, "a/b", list_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.nkeys, 1);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_delete(os, "a/b/c.log", obj_cb, &x), 0);
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_delete(os, "a/b/c.log", obj_cb, &x), 0); /* idempotent */
  wait_done(os, &x);
  assert_int_equal(x.r.err, 0);
  /* Bad arguments: an error and no callback. */
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(os, "/abs", 0, 0, get_cb, &x), RN_EINVAL);
  assert_int_equal(rn_objstore_get(os, "", 0, 0, get_cb, &x), RN_EINVAL);
  assert_int_equal(x.done, 0);
  assert_int_equal(rn_objstore_inflight(os), 0);
  rn_objstore_stats_t st;
  rn_objstore_stats(os, &st);
  assert_true(st.requests[RN_OBJ_PUT] >= 3);
  assert_true(st.errors[RN_OBJ_GET] >= 2);
}

static void test_localdir_and_faults(void **state) {
  (void)state;
  char *dir = rn_test_tmpdir();
  char root[512];
  snprintf(root, sizeof(root), "%s/bucket", dir);
  rn_objstore_t *os;
  char why[200];
  assert_int_equal(rn_localdir_new(root, &os, why, sizeof(why)), 0);
  store_checks(os, root);

  /* Destroy with operations in flight: each completes exactly once. */
  res_t many[16] = {{0}};
  for (int i = 0; i < 16; i++) assert_int_equal(rn_objstore_head(os, "a/file", obj_cb, &many[i]), 0);
  rn_objstore_destroy(os);
  for (int i = 0; i < 16; i++) assert_int_equal(many[i].done, 1);

  /* The fault injector. */
  rn_objstore_t *inner, *fs;
  assert_int_equal(rn_localdir_new(root, &inner, why, sizeof(why)), 0);
  rn_faulty_opts_t fo = {0};
  fo.fail_next[RN_OBJ_PUT] = 2;
  assert_int_equal(rn_faulty_new(inner, &fo, &fs), 0);
  const uint8_t v[] = "0123456789";
  for (int i = 0; i < 3; i++) {
    res_t x = {0};
    assert_int_equal(rn_objstore_put_mem(fs, "f/k", v, 10, obj_cb, &x), 0);
    wait_done(fs, &x);
    assert_int_equal(x.r.err, i < 2 ? RN_EOBJSTORE : 0);
  }
  fo = (rn_faulty_opts_t){.down = true};
  rn_faulty_set(fs, &fo);
  res_t x = {0};
  assert_int_equal(rn_objstore_get(fs, "f/k", 0, 0, get_cb, &x), 0);
  wait_done(fs, &x);
  assert_int_equal(x.r.err, RN_EOBJSTORE);
  fo = (rn_faulty_opts_t){.lose_put_response = true};
  rn_faulty_set(fs, &fo);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_put_mem(fs, "f/lost", v, 10, obj_cb, &x), 0);
  wait_done(fs, &x);
  assert_int_equal(x.r.err, RN_EOBJSTORE);
  fo = (rn_faulty_opts_t){.truncate_gets = true};
  rn_faulty_set(fs, &fo);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(fs, "f/lost", 0, 10, get_cb, &x), 0); /* it was stored */
  wait_done(fs, &x);
  assert_int_equal(x.r.err, 0);
  assert_int_equal(x.len, 9);
  free(x.data);
  fo = (rn_faulty_opts_t){.corrupt_gets = true};
  rn_faulty_set(fs, &fo);
  memset(&x, 0, sizeof(x));
  assert_int_equal(rn_objstore_get(fs, "f/k", 0, 10, get_cb, &x), 0);
  wait_done(fs, &x);
  assert_int_equal(x.len, 10);
  assert_memory_not_equal(x.data, v, 10);
  free(x.data);
  rn_objstore_destroy(fs);
  rn_test_rmtree(dir);
  free(dir);
}

/* ==== a tiered shard end to end ============================================== */

typedef struct fx {
  char *dir;
  char logdir[600], bucket[600], jobs[600];
  rn_io_t *io;
  rn_objstore_t *inner, *store; /* store = faulty(inner) */
  rn_tier_t *tier;
  rn_log_t *log;
  rn_tier_shard_t *ts;
  int64_t now;
  rn_log_opts_t lo;
} fx_t;

static int64_t fx_clock(void *arg) { return ((fx_t *)arg)->now; }

/* One round of waiting: the io's and the store's completions. */
static void pump(fx_t *f) {
  struct pollfd p[2] = {{.fd = rn_io_fd(f->io), .events = POLLIN}, {.fd = rn_objstore_fd(f->store), .events = POLLIN}};
  if (!rn_io_poll(f->io) && !rn_objstore_poll(f->store) &&
      (rn_io_inflight(f->io) || rn_objstore_inflight(f->store)))
    (void)poll(p, 2, 1000);
  rn_io_poll(f->io);
  rn_objstore_poll(f->store);
}

typedef bool (*cond_fn)(fx_t *f);

/* Tick and pump until cond holds (at most `rounds` rounds: a bound, not a
 * timing assertion). */
static void until(fx_t *f, cond_fn cond, int rounds) {
  for (int i = 0; i < rounds; i++) {
    if (cond(f)) return;
    rn_log_tick(f->log, f->now);
    rn_tier_tick(f->tier, f->now);
    pump(f);
  }
  assert_true(cond(f));
}

static void open_shard(fx_t *f) {
  f->log = lt_open(f->io, f->logdir, &f->lo);
  rn_tier_shard_opts_t so = {.stream = "clicks", .uid = 42, .shard = 3, .dir = f->logdir, .retention_ms = -1,
                             .retention_bytes = -1, .local_retention_ms = 0, .local_retention_bytes = -1};
  char why[256];
  rn_err_t err = rn_tier_shard_open(f->tier, f->log, &so, &f->ts, why, sizeof(why));
  if (err) fprintf(stderr, "shard open: %s\n", why);
  assert_int_equal(err, 0);
}

static void close_shard(fx_t *f) {
  rn_tier_shard_close(f->ts);
  f->ts = NULL;
  assert_int_equal(rn_log_close(f->log), 0);
  f->log = NULL;
}

static void new_tier(fx_t *f) {
  rn_tier_opts_t to;
  rn_tier_opts_default(&to);
  to.store = f->store;
  to.io = f->io;
  to.chunk_bytes = 4096; /* several chunks per segment: reads assemble batches across them */
  to.cache_bytes = 64 * 1024;
  to.gc_interval_ms = -1;
  to.gc_grace_ms = 0;
  to.clock.wall_ms = fx_clock;
  to.clock.arg = f;
  assert_int_equal(rn_tier_new(&to, &f->tier), 0);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->dir = rn_test_tmpdir();
  snprintf(f->logdir, sizeof(f->logdir), "%s/data/clicks/3", f->dir);
  snprintf(f->bucket, sizeof(f->bucket), "%s/bucket", f->dir);
  snprintf(f->jobs, sizeof(f->jobs), "%s/data/tier-jobs", f->dir);
  f->io = lt_io(NULL);
  f->now = (int64_t)time(NULL) * 1000; /* the bucket's mtimes are real: the collector compares them */
  char why[200];
  assert_int_equal(rn_localdir_new(f->bucket, &f->inner, why, sizeof(why)), 0);
  assert_int_equal(rn_faulty_new(f->inner, NULL, &f->store), 0);
  rn_log_opts_default(&f->lo);
  f->lo.segment_bytes = 16 * 1024;
  f->lo.index_interval = 1024;
  f->lo.retention_ms = -1; /* the tier applies retention */
  f->lo.retention_bytes = -1;
  f->lo.clock.wall_ms = fx_clock;
  f->lo.clock.arg = f;
  new_tier(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->ts) close_shard(f);
  rn_tier_destroy(f->tier);
  rn_objstore_destroy(f->store);
  rn_io_destroy(f->io);
  rn_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

/* 300 batches of 5 records (~120 KiB: ~8 segments), timestamps 1000 + tag. */
static void produce_values(fx_t *f, uint64_t from_tag, int nbatches, size_t value_len) {
  for (int i = 0; i < nbatches; i++) {
    size_t len;
    uint64_t tag = from_tag + (uint64_t)i;
    uint8_t *b = lt_batch(tag, 5, value_len, (int64_t)(1000 + tag * 10), RN_CODEC_NONE, &len);
    lt_ack_t a = {0};
    assert_int_equal(rn_log_append(f->log, b, len, 0, lt_ack_cb, &a, NULL), 0);
    free(b);
    lt_wait(f->io, &a);
    assert_int_equal(a.err, 0);
  }
}

static void produce(fx_t *f, uint64_t from_tag, int nbatches) { produce_values(f, from_tag, nbatches, 60); }

static bool mostly_remote(fx_t *f) {
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  return s.backlog_segments == 0 && rn_log_segment_count(f->log) <= 2 && rn_log_start(f->log) > 0;
}

typedef struct rd {
  int done;
  rn_err_t err;
  uint8_t *data;
  size_t len;
  uint64_t off;
} rd_t;
static void rd_cb(void *arg, rn_err_t err, uint8_t *data, size_t len) {
  rd_t *r = arg;
  r->err = err;
  r->data = data;
  r->len = len;
  r->done++;
}
static void off_cb(void *arg, rn_err_t err, uint64_t off) {
  rd_t *r = arg;
  r->err = err;
  r->off = off;
  r->done++;
}
static bool g_rd_done;
static rd_t *g_rd;
static bool rd_is_done(fx_t *f) {
  (void)f;
  return g_rd->done != 0;
}
static void wait_rd(fx_t *f, rd_t *r) {
  g_rd = r;
  (void)g_rd_done;
  until(f, rd_is_done, 100000);
}

/* Read [from, to) through the tier (below the log start) and the log,
 * checking every record's value against its tag and index. */
static uint64_t read_all(fx_t *f, uint64_t from) {
  uint64_t off = from, seen = 0;
  uint64_t ls = rn_log_start(f->log);
  while (off < ls) {
    rd_t r = {0};
    assert_int_equal(rn_tier_read(f->ts, off, 8192, rd_cb, &r), 0);
    wait_rd(f, &r);
    assert_int_equal(r.err, 0);
    assert_true(r.len > 0);
    size_t at = 0;
    while (at < r.len) {
      rn_batch_iter_t it;
      assert_int_equal(rn_batch_iter_init(&it, r.data + at, r.len - at), 0);
      rn_record_t rec;
      int i = 0;
      while (rn_batch_iter_next(&it, &rec) == 0) {
        char want[64];
        /* tag = offset / 5 (5 records a batch from offset 0), index = offset % 5 */
        int wl = snprintf(want, sizeof(want), "%" PRIu64 ":%" PRIu64 ":", rec.offset / 5, rec.offset % 5);
        if (rec.offset >= off) {
          assert_int_equal(rec.offset, off);
          assert_memory_equal(rec.value, want, (size_t)wl);
          off++;
          seen++;
        }
        i++;
      }
      at += it.hdr.batch_length;
      rn_batch_iter_free(&it);
    }
    free(r.data);
  }
  return seen;
}

static void test_tiered_shard(void **state) {
  fx_t *f = *state;
  open_shard(f);
  produce(f, 0, 300);
  f->now += 1000;
  until(f, mostly_remote, 100000);
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  assert_true(s.remote_segments >= 5);
  assert_int_equal(rn_tier_shard_start(f->ts), 0);
  assert_true(rn_tier_shard_remote_end(f->ts) >= rn_log_start(f->log));
  uint64_t ls = rn_log_start(f->log);
  assert_int_equal(read_all(f, 0), ls); /* every remote record, in order, byte-exact */
  /* From the middle of a batch, too. */
  rd_t r = {0};
  assert_int_equal(rn_tier_read(f->ts, 7, 1, rd_cb, &r), 0);
  wait_rd(f, &r);
  assert_int_equal(r.err, 0);
  rn_batch_header_t h;
  assert_int_equal(rn_batch_verify(r.data, r.len, &h, NULL), 0);
  assert_int_equal(h.base_offset, 5); /* the batch holding 7, whole */
  assert_int_equal(r.len, h.batch_length);
  free(r.data);
  /* Out of range: an error and no callback. */
  memset(&r, 0, sizeof(r));
  assert_int_equal(rn_tier_read(f->ts, ls, 100, rd_cb, &r), RN_EOFFSET);
  assert_int_equal(r.done, 0);
  /* A time lookup into remote data: tag 40's records have ts 1400.. */
  memset(&r, 0, sizeof(r));
  assert_int_equal(rn_tier_find_time(f->ts, 1400, off_cb, &r), 0);
  wait_rd(f, &r);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.off, 200);
  memset(&r, 0, sizeof(r));
  assert_int_equal(rn_tier_find_time(f->ts, 1402, off_cb, &r), 0);
  wait_rd(f, &r);
  assert_int_equal(r.off, 202);
  rn_tier_stats_t ts;
  rn_tier_stats(f->tier, &ts);
  assert_true(ts.cache_hits > 0 && ts.cache_misses > 0);
  assert_true(ts.bytes_uploaded > 0 && ts.bytes_downloaded > 0);
  assert_true(ts.cache_bytes <= 64 * 1024 + 8 * 4096 + (8u << 20)); /* bounded */

  /* The manifest survives a restart, and so does everything remote. */
  close_shard(f);
  rn_tier_destroy(f->tier);
  new_tier(f);
  open_shard(f);
  assert_int_equal(rn_log_start(f->log), ls);
  assert_int_equal(read_all(f, 0), ls);
}

/* A long sequential read through a cache it overflows several times over
 * (the smallest the tier allows: 4 chunks + 8 MiB; ~30 MiB of 15 KiB
 * batches in 1 MiB segments) is still served by read-ahead: almost every
 * chunk is in flight or there before the reader asks, so misses stay a
 * small part of the chunks downloaded. (A read-ahead that only used room
 * left in the cache stopped once it was full: from then on every chunk was
 * a miss, one GET at a time.) */
static void test_readahead_full_cache(void **state) {
  fx_t *f = *state;
  rn_tier_destroy(f->tier);
  rn_tier_opts_t to;
  rn_tier_opts_default(&to);
  to.store = f->store;
  to.io = f->io;
  to.chunk_bytes = 4096;
  to.cache_bytes = 0; /* raised to the minimum */
  to.readahead_chunks = 16;
  to.gc_interval_ms = -1;
  to.clock.wall_ms = fx_clock;
  to.clock.arg = f;
  assert_int_equal(rn_tier_new(&to, &f->tier), 0);
  f->lo.segment_bytes = 1 << 20;
  open_shard(f);
  produce_values(f, 0, 2000, 3000);
  f->now += 1000;
  until(f, mostly_remote, 1000000);
  rn_tier_stats_t a, b;
  rn_tier_stats(f->tier, &a);
  uint64_t ls = rn_log_start(f->log);
  assert_int_equal(read_all(f, 0), ls);
  rn_tier_stats(f->tier, &b);
  uint64_t chunks = (b.bytes_downloaded - a.bytes_downloaded) / 4096;
  uint64_t misses = b.cache_misses - a.cache_misses, evictions = b.cache_evictions - a.cache_evictions;
  printf("read %" PRIu64 " records: ~%" PRIu64 " chunks downloaded, %" PRIu64 " misses, %" PRIu64 " evictions\n", ls,
         chunks, misses, evictions);
  assert_true(evictions > 2 * (8u << 20) / 4096); /* the cache overflowed, twice over at least */
  assert_true(misses * 10 < chunks);
  assert_true(b.cache_bytes <= 4 * 4096 + (8u << 20) + 16 * 4096); /* bounded (+ what arrives at once) */
}

static bool backlog_nonzero(fx_t *f) {
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  return s.backlog_segments >= 1 && s.last_err != 0;
}

static void test_outage_and_corruption(void **state) {
  fx_t *f = *state;
  open_shard(f);
  rn_faulty_opts_t fo = {.down = true};
  rn_faulty_set(f->store, &fo);
  produce(f, 0, 200); /* produce never waits for the store */
  until(f, backlog_nonzero, 100000);
  assert_int_equal(rn_log_start(f->log), 0); /* nothing left the disk */
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  assert_int_equal(s.remote_segments, 0);
  assert_int_equal(s.last_err, RN_EOBJSTORE);
  /* The store is back: the backlog drains (the backoff is time: move it). */
  fo.down = false;
  rn_faulty_set(f->store, &fo);
  for (int i = 0; i < 200 && !mostly_remote(f); i++) {
    f->now += 1000;
    until(f, mostly_remote, 50);
    if (mostly_remote(f)) break;
  }
  assert_true(mostly_remote(f));
  uint64_t ls = rn_log_start(f->log);
  assert_int_equal(read_all(f, 0), ls);

  /* A PUT whose response was lost uploads again, same keys. */
  fo.lose_put_response = true;
  rn_faulty_set(f->store, &fo);
  produce(f, 200, 60);
  until(f, backlog_nonzero, 100000);
  fo.lose_put_response = false;
  rn_faulty_set(f->store, &fo);
  for (int i = 0; i < 200 && !mostly_remote(f); i++) {
    f->now += 1000;
    until(f, mostly_remote, 50);
    if (mostly_remote(f)) break;
  }
  assert_int_equal(read_all(f, 0), rn_log_start(f->log));

  /* Flip a byte of a remote .log object: the read fails, nothing served. */
  close_shard(f);
  rn_tier_destroy(f->tier);
  new_tier(f); /* a cold cache */
  open_shard(f);
  char path[2000];
  char prefix[600];
  rn__tier_shard_prefix(f->tier, "clicks", 42, 3, prefix, sizeof(prefix));
  snprintf(path, sizeof(path), "%s/%s%020d-0.log", f->bucket, prefix, 0);
  FILE *fp = fopen(path, "r+b");
  assert_non_null(fp);
  fseek(fp, 300, SEEK_SET);
  int c = fgetc(fp);
  fseek(fp, 300, SEEK_SET);
  fputc(c ^ 0x40, fp);
  fclose(fp);
  rd_t r = {0};
  assert_int_equal(rn_tier_read(f->ts, 0, 1 << 20, rd_cb, &r), 0);
  wait_rd(f, &r);
  assert_int_equal(r.err, RN_ECORRUPT);
  assert_null(r.data);
  rn_tier_stats_t ts;
  rn_tier_stats(f->tier, &ts);
  assert_true(ts.corrupt_objects >= 1);
  /* Other segments still read. */
  rn_log_seg_info_t segs[2];
  (void)segs;
  memset(&r, 0, sizeof(r));
  const rn_mf_seg_t *second = &f->ts->mf.segs[1];
  assert_int_equal(rn_tier_read(f->ts, second->base, 1 << 20, rd_cb, &r), 0);
  wait_rd(f, &r);
  assert_int_equal(r.err, 0);
  free(r.data);
}

static bool drained(fx_t *f) { return rn_tier_drained(f->tier); }

static bool no_remote(fx_t *f) {
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  return s.remote_segments == 0 && f->ts->mf.n == 0;
}

typedef struct listing {
  int done;
  size_t n;
} listing_t;
static void count_cb(void *arg, const rn_obj_result_t *r, const rn_obj_entry_t *e, size_t n) {
  (void)e;
  listing_t *l = arg;
  assert_int_equal(r->err, 0);
  l->n = n;
  l->done = 1;
}
static size_t count_objects(fx_t *f, const char *prefix) {
  listing_t l = {0};
  assert_int_equal(rn_objstore_list(f->store, prefix, count_cb, &l), 0);
  while (!l.done) pump(f);
  return l.n;
}

static void test_retention_gc_restore_delete(void **state) {
  fx_t *f = *state;
  open_shard(f);
  produce(f, 0, 300);
  f->now += 1000;
  until(f, mostly_remote, 100000);
  char prefix[600];
  rn__tier_shard_prefix(f->tier, "clicks", 42, 3, prefix, sizeof(prefix));
  rn_tier_shard_stats_t s;
  rn_tier_shard_stats(f->ts, &s);
  /* 3 objects per remote segment, and the mirrored manifest. */
  size_t objs = count_objects(f, prefix);
  assert_int_equal(objs, 3 * (size_t)f->ts->mf.n + 1);

  /* An orphan (a PUT whose STARTED never became durable) is collected;
   * what the manifest references is not. */
  res_t x = {0};
  char orphan[800];
  snprintf(orphan, sizeof(orphan), "%s%020d-0.log", prefix, 1); /* below the uploaded end, no entry */
  assert_int_equal(rn_objstore_put_mem(f->store, orphan, (const uint8_t *)"x", 1, obj_cb, &x), 0);
  while (!x.done) pump(f);
  /* Past the uploaded end a future upload may write the same key: kept. */
  x = (res_t){0};
  snprintf(orphan, sizeof(orphan), "%s%020d-0.log", prefix, 999999);
  assert_int_equal(rn_objstore_put_mem(f->store, orphan, (const uint8_t *)"x", 1, obj_cb, &x), 0);
  while (!x.done) pump(f);
  objs++;
  /* The bucket's mtimes are real time: the collector's clock must be past
   * the orphan's however long the test took so far (a loaded machine). */
  int64_t real = (int64_t)time(NULL) * 1000 + 1000;
  f->now = (f->now > real ? f->now : real) + 1000;
  rn_tier_gc_now(f->tier);
  /* Wait for the collector's delete to complete (its completion, not a
   * listing: the store's workers may finish a later LIST before the DELETE's
   * completion is delivered). */
  rn_tier_stats_t ts;
  for (int i = 0; i < 100000; i++) {
    rn_tier_stats(f->tier, &ts);
    if (ts.orphans_collected > 0 || !rn_objstore_inflight(f->store)) break;
    pump(f);
  }
  rn_tier_stats(f->tier, &ts);
  assert_int_equal(ts.orphans_collected, 1);
  assert_int_equal(count_objects(f, prefix), objs);
  x = (res_t){0};
  assert_int_equal(rn_objstore_delete(f->store, orphan, obj_cb, &x), 0);
  while (!x.done) pump(f);
  objs--;

  /* Restore onto an empty directory from the bucket alone, after a
   * graceful stop: the stop drains the manifest mirror, so the bucket's
   * manifest covers every uploaded segment (without the drain the mirror of
   * the last upload may still be in flight and the restore ends earlier). */
  uint64_t end = rn_log_next_offset(f->log);
  uint64_t up_end = rn_tier_shard_remote_end(f->ts);
  rn_tier_drain(f->tier);
  until(f, drained, 100000);
  close_shard(f);
  rn_test_rmtree(f->logdir);
  rd_t r = {0};
  assert_int_equal(rn_tier_restore_shard(f->tier, "clicks", 42, 3, f->logdir, off_cb, &r), 0);
  while (!r.done) pump(f);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.off, up_end);
  f->lo.first_offset = r.off;
  open_shard(f);
  assert_int_equal(rn_log_start(f->log), up_end);
  assert_int_equal(read_all(f, 0), up_end); /* every uploaded record back */
  assert_true(end >= up_end);
  memset(&r, 0, sizeof(r));
  assert_int_equal(rn_tier_restore_shard(f->tier, "clicks", 42, 99, f->logdir, off_cb, &r), 0);
  while (!r.done) pump(f);
  assert_int_equal(r.err, RN_ENOENT);

  /* Total retention by time: remote segments and their manifest entries go. */
  rn_tier_shard_set_retention(f->ts, 10, -1, 0, -1);
  f->now += 100000;
  until(f, no_remote, 100000);
  for (int i = 0; i < 100 && count_objects(f, prefix) != 1; i++) pump(f);
  assert_int_equal(count_objects(f, prefix), 1); /* the manifest mirror only */
  rn_tier_stats(f->tier, &ts);
  assert_true(ts.remote_deletes > 0);
  assert_int_equal(rn_tier_shard_start(f->ts), rn_log_start(f->log));

  /* Deleting the stream: a durable job removes every object. */
  close_shard(f);
  x = (res_t){0};
  assert_int_equal(rn_tier_put_stream(f->tier, "clicks", 42, (const uint8_t *)"desc", 4, obj_cb, &x), 0);
  while (!x.done) pump(f);
  res_t g = {0};
  assert_int_equal(rn_tier_get_stream(f->tier, "clicks", get_cb, &g), 0);
  while (!g.done) pump(f);
  assert_int_equal(g.r.err, 0);
  assert_memory_equal(g.data, "desc", 4);
  free(g.data);
  assert_int_equal(rn_tier_delete_stream(f->tier, f->jobs, "clicks", 42, 4), 0);
  for (int i = 0; i < 100000 && rn_tier_jobs_active(f->tier); i++) {
    rn_tier_tick(f->tier, f->now);
    pump(f);
  }
  assert_int_equal(rn_tier_jobs_active(f->tier), 0);
  assert_int_equal(count_objects(f, ""), 0);
  g = (res_t){0};
  assert_int_equal(rn_tier_get_stream(f->tier, "clicks", get_cb, &g), 0);
  while (!g.done) pump(f);
  assert_int_equal(g.r.err, RN_ENOENT);
  struct stat st;
  char jobfile[800];
  snprintf(jobfile, sizeof(jobfile), "%s/clicks-42.delete", f->jobs);
  assert_int_not_equal(stat(jobfile, &st), 0); /* the job is done and gone */
  /* A job file left by a crash is resumed. */
  FILE *jf = fopen(jobfile, "w");
  assert_non_null(jf);
  fputs("clicks 42 4\n", jf);
  fclose(jf);
  assert_int_equal(rn_tier_resume_jobs(f->tier, f->jobs), 0);
  assert_int_equal(rn_tier_jobs_active(f->tier), 1);
  for (int i = 0; i < 100000 && rn_tier_jobs_active(f->tier); i++) {
    rn_tier_tick(f->tier, f->now);
    pump(f);
  }
  assert_int_not_equal(stat(jobfile, &st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_manifest_codec),
      cmocka_unit_test(test_localdir_and_faults),
      cmocka_unit_test_setup_teardown(test_tiered_shard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_readahead_full_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_outage_and_corruption, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retention_gc_restore_delete, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
