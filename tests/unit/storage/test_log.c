/*
 * test_log.c — the segmented log on the real file system, under whichever
 * I/O backend RUNNEL_IO_BACKEND names: append/read round trips, offset and
 * time lookups across segment boundaries, roll, reopen (clean and not),
 * index rebuild, retention by time and bytes, truncation, bad input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logtest.h"
#include "testutil.h"

typedef struct fx {
  char *dir;
  char logdir[700];
  rn_io_t *io;
  int64_t now;
  rn_log_opts_t opts;
} fx_t;

static int64_t fx_clock(void *arg) { return ((fx_t *)arg)->now; }

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->dir = rn_test_tmpdir();
  snprintf(f->logdir, sizeof(f->logdir), "%s/shard-0", f->dir);
  f->io = lt_io(NULL);
  f->now = 1700000000000;
  rn_log_opts_default(&f->opts);
  f->opts.clock.wall_ms = fx_clock;
  f->opts.clock.arg = f;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  rn_io_destroy(f->io);
  rn_test_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static rn_log_t *open_log(fx_t *f, rn_log_recovery_t *rec) {
  rn_log_t *log = NULL;
  rn_log_recovery_t local;
  rn_err_t err = rn_log_open(f->io, f->logdir, &f->opts, &log, rec ? rec : &local);
  if (err) fprintf(stderr, "open: %s: %s\n", rn_err_name(err), (rec ? rec : &local)->message);
  assert_int_equal(err, 0);
  return log;
}

/* Append one batch and wait for its ack; returns the base offset. */
static uint64_t append_wait(fx_t *f, rn_log_t *log, uint64_t tag, int n, size_t vlen, int64_t ts) {
  size_t len;
  uint8_t *b = lt_batch(tag, n, vlen, ts, RN_CODEC_NONE, &len);
  lt_ack_t a = {0};
  uint64_t base = 0;
  assert_int_equal(rn_log_append(log, b, len, 7, lt_ack_cb, &a, &base), 0);
  free(b);
  lt_wait(f->io, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.base, base);
  return base;
}

/* Checks every record's value prefix "<tag>:<i>:" against a table. */
typedef struct expect {
  uint64_t *tag; /* per offset */
  int *idx;
  uint64_t n;
  uint64_t seen;
  int64_t *ts;
} expect_t;

static void check_rec(void *arg, const rn_record_t *r) {
  expect_t *e = arg;
  assert_true(r->offset < e->n);
  char want[64];
  int wl = snprintf(want, sizeof(want), "%" PRIu64 ":%d:", e->tag[r->offset], e->idx[r->offset]);
  assert_true(r->value_len >= (size_t)wl);
  assert_memory_equal(r->value, want, (size_t)wl);
  if (e->ts) assert_int_equal(r->timestamp, e->ts[r->offset]);
  e->seen++;
}

static void expect_init(expect_t *e, uint64_t cap) {
  memset(e, 0, sizeof(*e));
  e->tag = calloc(cap, sizeof(*e->tag));
  e->idx = calloc(cap, sizeof(*e->idx));
  e->ts = calloc(cap, sizeof(*e->ts));
}
static void expect_add(expect_t *e, uint64_t tag, int n, int64_t ts) {
  for (int i = 0; i < n; i++, e->n++) {
    e->tag[e->n] = tag;
    e->idx[e->n] = i;
    e->ts[e->n] = ts + i;
  }
}
static void expect_free(expect_t *e) {
  free(e->tag);
  free(e->idx);
  free(e->ts);
}

/* Many batches of varied shape, pipelined (no wait between appends). */
static void test_append_read_roundtrip(void **state) {
  fx_t *f = *state;
  rn_log_t *log = open_log(f, NULL);
  assert_int_equal(rn_log_start(log), 0);
  assert_int_equal(rn_log_end(log), 0);
  enum { N = 300 };
  lt_ack_t acks[N] = {{0}};
  expect_t e;
  expect_init(&e, 100000);
  uint64_t next = 0;
  for (int i = 0; i < N; i++) {
    int n = 1 + i % 17;
    size_t len;
    uint8_t *b = lt_batch((uint64_t)i, n, (size_t)(i * 37 % 900), 1000 + i * 10, i % 3 ? RN_CODEC_NONE : RN_CODEC_LZ4, &len);
    uint64_t base;
    assert_int_equal(rn_log_append(log, b, len, 1, lt_ack_cb, &acks[i], &base), 0);
    free(b);
    assert_int_equal(base, next);
    next += (uint64_t)n;
    expect_add(&e, (uint64_t)i, n, 1000 + i * 10);
  }
  for (int i = 0; i < N; i++) {
    lt_wait(f->io, &acks[i]);
    assert_int_equal(acks[i].err, 0);
    assert_int_equal(acks[i].done, 1);
  }
  /* Acks come in offset order: once the last is done all are. */
  assert_int_equal(rn_log_end(log), next);
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, next);
  /* Reading from the middle of a batch returns that whole batch. */
  assert_int_equal(lt_read_all(log, 5, check_rec, &e, &count), 0);
  assert_int_equal(count, next - 5);
  /* Out of range. */
  uint8_t buf[64];
  size_t len;
  assert_int_equal(rn_log_read(log, next + 1, buf, sizeof(buf), &len), RN_EOFFSET);
  assert_int_equal(rn_log_read(log, next, buf, sizeof(buf), &len), 0);
  assert_int_equal(len, 0);
  /* A buffer too small for the first batch says how much is needed. */
  assert_int_equal(rn_log_read(log, 0, buf, sizeof(buf), &len), RN_ETOOLARGE);
  assert_true(len > sizeof(buf));
  assert_int_equal(rn_log_close(log), 0);
  expect_free(&e);
}

/* Small segments: lookups by offset and by time at every boundary. */
static void test_roll_and_lookups(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 8192;
  f->opts.index_interval = 512;
  rn_log_t *log = open_log(f, NULL);
  expect_t e;
  expect_init(&e, 10000);
  for (int i = 0; i < 200; i++) {
    int n = 1 + i % 5;
    int64_t ts = 5000 + (int64_t)i * 100;
    uint64_t base = append_wait(f, log, (uint64_t)i, n, 200, ts);
    assert_int_equal(base, e.n);
    expect_add(&e, (uint64_t)i, n, ts);
  }
  assert_true(rn_log_segment_count(log) > 10);
  /* Every single offset, read one at a time: first record >= offset matches. */
  uint8_t *buf = malloc(1 << 16);
  for (uint64_t off = 0; off < e.n; off++) {
    size_t len;
    assert_int_equal(rn_log_read(log, off, buf, 1 << 16, &len), 0);
    assert_true(len > 0);
    rn_batch_iter_t it;
    assert_int_equal(rn_batch_iter_init(&it, buf, len), 0);
    assert_true(it.hdr.base_offset <= off);
    assert_true(rn_batch_last_offset(&it.hdr) >= off);
    assert_int_equal(it.hdr.leader_epoch, 7);
    assert_int_equal(it.hdr.arrival_time_ms, f->now);
    rn_record_t r;
    do assert_int_equal(rn_batch_iter_next(&it, &r), 0);
    while (r.offset < off);
    check_rec(&e, &r);
    rn_batch_iter_free(&it);
  }
  free(buf);
  /* Time: exact timestamps, between records, before all, after all. */
  for (uint64_t off = 0; off < e.n; off++) {
    uint64_t got;
    assert_int_equal(rn_log_find_time(log, e.ts[off], &got), 0);
    /* The first record with ts >= e.ts[off]: timestamps are non-decreasing
     * except inside a batch where they are +i; find it by brute force. */
    uint64_t want = e.n;
    for (uint64_t k = 0; k < e.n; k++)
      if (e.ts[k] >= e.ts[off]) {
        want = k;
        break;
      }
    assert_int_equal(got, want);
  }
  uint64_t got;
  assert_int_equal(rn_log_find_time(log, 0, &got), 0);
  assert_int_equal(got, 0);
  assert_int_equal(rn_log_find_time(log, INT64_MAX, &got), 0);
  assert_int_equal(got, e.n);
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, e.n);
  assert_int_equal(rn_log_verify(log, NULL, 0), 0);
  assert_int_equal(rn_log_close(log), 0);
  expect_free(&e);
}

static void test_reopen_clean_and_rebuild(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 16384;
  rn_log_t *log = open_log(f, NULL);
  expect_t e;
  expect_init(&e, 10000);
  for (int i = 0; i < 100; i++) {
    append_wait(f, log, (uint64_t)i, 3, 300, 100 + i);
    expect_add(&e, (uint64_t)i, 3, 100 + i);
  }
  uint32_t nseg = rn_log_segment_count(log);
  assert_true(nseg > 3);
  assert_int_equal(rn_log_close(log), 0);

  rn_log_recovery_t rec;
  log = open_log(f, &rec);
  assert_true(rec.clean);
  assert_int_equal(rec.segments_scanned, 0);
  assert_int_equal(rec.segments, nseg);
  assert_int_equal(rn_log_next_offset(log), e.n);
  /* Appends continue after the reopened tail. */
  assert_int_equal(append_wait(f, log, 1000, 2, 10, 999), e.n);
  expect_add(&e, 1000, 2, 999);
  assert_int_equal(rn_log_close(log), 0);

  /* Remove one index file: it is rebuilt by scanning that segment. */
  char path[800];
  snprintf(path, sizeof(path), "%s/%020d.index", f->logdir, 0);
  assert_int_equal(unlink(path), 0);
  log = open_log(f, &rec);
  assert_true(rec.clean);
  assert_int_equal(rec.indexes_rebuilt, 1);
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, e.n);
  assert_int_equal(rn_log_close(log), 0);
  expect_free(&e);
}

/* Copy the log directory while the log is open (everything acknowledged is
 * synced): opening the copy is a restart after a crash, with no marker. */
static void test_reopen_after_crash_copy(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 16384;
  rn_log_t *log = open_log(f, NULL);
  expect_t e;
  expect_init(&e, 10000);
  for (int i = 0; i < 120; i++) {
    append_wait(f, log, (uint64_t)i, 2, 250, 100 + i);
    expect_add(&e, (uint64_t)i, 2, 100 + i);
  }
  lt_drain(f->io); /* background seals done, so the copy is consistent */
  char cmd[1400], copy[600];
  snprintf(copy, sizeof(copy), "%s/copy", f->dir);
  snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", f->logdir, copy);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(rn_log_close(log), 0);

  rn_log_recovery_t rec;
  snprintf(f->logdir, sizeof(f->logdir), "%s", copy);
  log = open_log(f, &rec);
  assert_false(rec.clean);
  /* Only segments at or above the recovery point were scanned. */
  assert_true(rec.segments_scanned >= 1);
  assert_true(rec.segments_scanned < rec.segments);
  assert_int_equal(rec.bytes_truncated, 0);
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, e.n);
  assert_int_equal(rn_log_close(log), 0);
  expect_free(&e);
}

static void test_retention_time_and_bytes(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 8192;
  rn_log_t *log = open_log(f, NULL);
  for (int i = 0; i < 100; i++) append_wait(f, log, (uint64_t)i, 2, 300, (int64_t)i * 1000);
  lt_drain(f->io);
  uint32_t nseg = rn_log_segment_count(log);
  assert_true(nseg > 5);
  /* Nothing is older than the retention yet. */
  rn_log_set_retention(log, 1000000, -1);
  f->now = 100 * 1000;
  assert_int_equal(rn_log_apply_retention(log, f->now), 0);
  /* Records up to ts 30000 expire: segments whose max ts < 30000 go. */
  rn_log_set_retention(log, 70 * 1000, -1);
  unsigned removed = rn_log_apply_retention(log, f->now);
  assert_true(removed > 0);
  lt_drain(f->io);
  uint64_t start = rn_log_start(log);
  assert_true(start > 0);
  /* The first remaining record is not older than needed, and the segment
   * before it (gone) was entirely too old: record start-1 had ts < 30000. */
  uint64_t first;
  assert_int_equal(rn_log_find_time(log, 0, &first), 0);
  assert_int_equal(first, start);
  uint8_t buf[4096];
  size_t len;
  assert_int_equal(rn_log_read(log, start - 1, buf, sizeof(buf), &len), RN_EOFFSET);
  assert_int_equal(rn_log_read(log, start, buf, sizeof(buf), &len), 0);
  /* Batch i holds offsets 2i, 2i+1 with ts i*1000 (+0, +1): the record
   * just below the new start was older than now - retention. */
  uint64_t prev = start - 1;
  assert_true((int64_t)(prev / 2) * 1000 + (int64_t)(prev % 2) < 30000);
  /* And the active segment was never removed. */
  assert_true(rn_log_segment_count(log) >= 1);

  /* Bytes: keep under 20000 bytes, never the active segment. */
  rn_log_set_retention(log, -1, 20000);
  rn_log_apply_retention(log, f->now);
  lt_drain(f->io);
  assert_true(rn_log_size_bytes(log) <= 20000 || rn_log_segment_count(log) == 1);
  rn_log_set_retention(log, -1, 0);
  rn_log_apply_retention(log, f->now);
  lt_drain(f->io);
  assert_int_equal(rn_log_segment_count(log), 1);
  uint64_t end = rn_log_end(log);
  assert_int_equal(rn_log_close(log), 0);

  /* The deletions are durable: reopen sees the same start and end. */
  rn_log_recovery_t rec;
  log = open_log(f, &rec);
  assert_int_equal(rn_log_segment_count(log), 1);
  assert_int_equal(rn_log_end(log), end);
  assert_true(rn_log_start(log) > start);
  assert_int_equal(rn_log_close(log), 0);
}

static void test_truncate(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 8192;
  rn_log_t *log = open_log(f, NULL);
  expect_t e;
  expect_init(&e, 10000);
  uint64_t bases[80];
  for (int i = 0; i < 80; i++) {
    bases[i] = append_wait(f, log, (uint64_t)i, 3, 300, 100 + i);
    expect_add(&e, (uint64_t)i, 3, 100 + i);
  }
  lt_drain(f->io);
  uint32_t nseg = rn_log_segment_count(log);
  /* Not a batch boundary. */
  assert_int_equal(rn_log_truncate(log, bases[20] + 1), RN_EINVAL);
  assert_int_equal(rn_log_truncate(log, 1000000), RN_EOFFSET);
  /* Cut in an earlier segment. */
  assert_int_equal(rn_log_truncate(log, bases[20]), 0);
  assert_true(rn_log_segment_count(log) < nseg);
  assert_int_equal(rn_log_end(log), bases[20]);
  assert_int_equal(rn_log_next_offset(log), bases[20]);
  e.n = bases[20];
  /* New data goes where the old was. */
  for (int i = 500; i < 530; i++) {
    assert_int_equal(append_wait(f, log, (uint64_t)i, 2, 100, 1000 + i), e.n);
    expect_add(&e, (uint64_t)i, 2, 1000 + i);
  }
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, e.n);
  /* At the end it is a no-op, even with background work in flight. */
  assert_int_equal(rn_log_truncate(log, e.n), 0);
  assert_int_equal(rn_log_close(log), 0);

  rn_log_recovery_t rec;
  log = open_log(f, &rec);
  assert_int_equal(lt_read_all(log, 0, check_rec, &e, &count), 0);
  assert_int_equal(count, e.n);
  assert_int_equal(rn_log_truncate(log, 0), 0);
  assert_int_equal(rn_log_end(log), 0);
  assert_int_equal(rn_log_segment_count(log), 1);
  assert_int_equal(rn_log_close(log), 0);
  log = open_log(f, &rec);
  assert_int_equal(rn_log_end(log), 0);
  assert_int_equal(rn_log_close(log), 0);
  expect_free(&e);
}

/* Segments also roll by age: at the next append, or at a tick when the
 * shard is quiet (so time retention can remove the old data). */
static void test_roll_by_age(void **state) {
  fx_t *f = *state;
  f->opts.segment_ms = 60000;
  rn_log_t *log = open_log(f, NULL);
  append_wait(f, log, 1, 2, 10, 1);
  assert_int_equal(rn_log_segment_count(log), 1);
  f->now += 59999;
  append_wait(f, log, 2, 2, 10, 2);
  assert_int_equal(rn_log_segment_count(log), 1);
  f->now += 1;
  append_wait(f, log, 3, 2, 10, 3); /* the segment is 60 s old: roll first */
  assert_int_equal(rn_log_segment_count(log), 2);
  f->now += 60000;
  rn_log_tick(log, f->now); /* quiet shard: the tick rolls */
  assert_int_equal(rn_log_segment_count(log), 3);
  rn_log_tick(log, f->now); /* an empty active segment never rolls */
  assert_int_equal(rn_log_segment_count(log), 3);
  lt_drain(f->io);
  uint64_t count;
  assert_int_equal(lt_read_all(log, 0, NULL, NULL, &count), 0);
  assert_int_equal(count, 6);
  assert_int_equal(rn_log_close(log), 0);
}

/* interval mode acknowledges from the page cache and syncs on ticks;
 * none mode never syncs on its own. Both read back what they acknowledged. */
static void test_interval_and_none(void **state) {
  fx_t *f = *state;
  for (int mode = 0; mode < 2; mode++) {
    f->opts.durability = mode ? RN_DURABILITY_NONE : RN_DURABILITY_INTERVAL;
    f->opts.interval_ms = 50;
    snprintf(f->logdir, sizeof(f->logdir), "%s/mode-%d", f->dir, mode);
    rn_log_t *log = open_log(f, NULL);
    for (int i = 0; i < 20; i++) append_wait(f, log, (uint64_t)i, 3, 100, i);
    assert_int_equal(rn_log_end(log), 60);
    /* interval: the next sync is due interval_ms after the last (at open);
     * none: only the once-a-second retention and age checks. */
    assert_int_equal(rn_log_next_tick_ms(log, f->now), mode ? 1000 : 50);
    assert_int_equal(rn_log_next_tick_ms(log, f->now + 80), mode ? 1000 : 0);
    f->now += 100;
    rn_log_tick(log, f->now);
    lt_drain(f->io);
    uint64_t count;
    assert_int_equal(lt_read_all(log, 0, NULL, NULL, &count), 0);
    assert_int_equal(count, 60);
    assert_int_equal(rn_log_close(log), 0);
    rn_log_recovery_t rec;
    log = open_log(f, &rec);
    assert_true(rec.clean);
    assert_int_equal(rn_log_end(log), 60);
    assert_int_equal(rn_log_close(log), 0);
  }
}

static void test_bad_input(void **state) {
  fx_t *f = *state;
  f->opts.max_batch_bytes = 4096;
  rn_log_t *log = open_log(f, NULL);
  size_t len;
  uint8_t *b = lt_batch(1, 3, 10, 5, RN_CODEC_NONE, &len);
  lt_ack_t a = {0};
  /* A flipped payload byte. */
  b[len - 1] ^= 1;
  assert_int_equal(rn_log_append(log, b, len, 0, lt_ack_cb, &a, NULL), RN_ECORRUPT);
  b[len - 1] ^= 1;
  /* Truncated, and trailing garbage. */
  assert_int_equal(rn_log_append(log, b, len - 1, 0, lt_ack_cb, &a, NULL), RN_ECORRUPT);
  uint8_t *big = malloc(len + 1);
  memcpy(big, b, len);
  big[len] = 0;
  assert_int_equal(rn_log_append(log, big, len + 1, 0, lt_ack_cb, &a, NULL), RN_ECORRUPT);
  free(big);
  free(b);
  /* Too large. */
  b = lt_batch(2, 10, 1000, 5, RN_CODEC_NONE, &len);
  assert_int_equal(rn_log_append(log, b, len, 0, lt_ack_cb, &a, NULL), RN_ETOOLARGE);
  free(b);
  assert_int_equal(a.done, 0); /* no callback for a refused append */
  /* The pre-verified entry point still decodes the header and its length. */
  b = lt_batch(3, 2, 10, 5, RN_CODEC_NONE, &len);
  assert_int_equal(rn_log_append_verified(log, b, len - 1, 0, lt_ack_cb, &a, NULL), RN_ECORRUPT);
  b[4] ^= 0xff; /* magic */
  assert_int_equal(rn_log_append_verified(log, b, len, 0, lt_ack_cb, &a, NULL), RN_EFORMAT);
  b[4] ^= 0xff;
  assert_int_equal(a.done, 0);
  assert_int_equal(rn_log_append_verified(log, b, len, 0, lt_ack_cb, &a, NULL), 0);
  free(b);
  lt_wait(f->io, &a);
  assert_int_equal(a.err, 0);
  assert_int_equal(a.base, 0);
  assert_int_equal(rn_log_next_offset(log), 2);
  /* Invalid options refuse to open. */
  rn_log_opts_t bad = f->opts;
  bad.index_interval = 0;
  rn_log_t *l2 = NULL;
  assert_int_equal(rn_log_open(f->io, f->logdir, &bad, &l2, NULL), RN_EINVAL);
  assert_null(l2);
  assert_int_equal(rn_log_close(log), 0);
}

static void test_durability_names(void **state) {
  (void)state;
  rn_durability_t d;
  assert_int_equal(rn_durability_parse("sync", &d), 0);
  assert_int_equal(d, RN_DURABILITY_SYNC);
  assert_int_equal(rn_durability_parse("interval", &d), 0);
  assert_int_equal(d, RN_DURABILITY_INTERVAL);
  assert_int_equal(rn_durability_parse("none", &d), 0);
  assert_int_equal(d, RN_DURABILITY_NONE);
  assert_int_equal(rn_durability_parse("fast", &d), RN_EINVAL);
  assert_string_equal(rn_durability_name(RN_DURABILITY_INTERVAL), "interval");
}

/* What tiering builds on: the segment listing (sealed only once synced and
 * indexed), segment paths, the index lookups on the files' bytes, and a log
 * created in an empty directory at first_offset. */
static void test_segments_and_index_lookups(void **state) {
  fx_t *f = *state;
  f->opts.segment_bytes = 4096;
  f->opts.index_interval = 256;
  rn_log_t *log = open_log(f, NULL);
  for (int i = 0; i < 40; i++) append_wait(f, log, (uint64_t)i, 5, 100, f->now + i * 10);
  rn_log_seg_info_t segs[64];
  uint32_t n = rn_log_segments(log, segs, 64);
  assert_true(n >= 3);
  assert_int_equal(n, rn_log_segment_count(log));
  assert_false(segs[n - 1].sealed); /* the active segment never is */
  uint64_t expect_base = 0;
  for (uint32_t i = 0; i < n; i++) {
    assert_int_equal(segs[i].base, expect_base);
    assert_true(segs[i].next > segs[i].base);
    assert_int_equal(segs[i].epoch, 7);
    expect_base = segs[i].next;
  }
  assert_int_equal(expect_base, rn_log_next_offset(log));
  assert_int_equal(rn_log_close(log), 0);
  log = open_log(f, NULL); /* after a clean close every closed segment is sealed */
  n = rn_log_segments(log, segs, 64);
  for (uint32_t i = 0; i + 1 < n; i++) assert_true(segs[i].sealed);
  assert_string_equal(rn_log_dir(log), f->logdir);
  char small[8];
  assert_int_equal(rn_log_seg_path(log, segs[1].base, ".index", small, sizeof(small)), RN_ETOOLARGE);

  /* Every offset of segment 1, looked up in its index file's bytes, gives a
   * position from which a scan reaches it; the time index the same. */
  char path[1024];
  assert_int_equal(rn_log_seg_path(log, segs[1].base, ".index", path, sizeof(path)), 0);
  size_t il, tl;
  uint8_t *ib = rn_test_read_file(path, &il);
  assert_int_equal(rn_log_seg_path(log, segs[1].base, ".timeindex", path, sizeof(path)), 0);
  uint8_t *tb = rn_test_read_file(path, &tl);
  assert_non_null(ib);
  assert_non_null(tb);
  uint64_t pos, prev = 0;
  for (uint64_t o = segs[1].base; o < segs[1].next; o++) {
    assert_int_equal(rn_log_index_lookup(ib, il, segs[1].base, segs[1].bytes, o, &pos), 0);
    assert_true(pos < segs[1].bytes);
    assert_true(pos >= prev); /* monotone */
    prev = pos;
  }
  assert_true(prev > 0); /* the sparse index has entries past the start */
  assert_int_equal(rn_log_index_lookup(ib, il, segs[1].base, segs[1].bytes, segs[1].base - 1, &pos), RN_EOFFSET);
  assert_int_equal(rn_log_index_lookup(ib, il, segs[1].base + 1, segs[1].bytes, segs[1].base, &pos), RN_ECORRUPT);
  assert_int_equal(rn_log_index_lookup(ib, il, segs[1].base, segs[1].bytes + 1, segs[1].base, &pos), RN_ECORRUPT);
  assert_int_equal(rn_log_timeindex_lookup(tb, tl, segs[1].base, segs[1].bytes, INT64_MIN, &pos), 0);
  assert_int_equal(pos, 0);
  assert_int_equal(rn_log_timeindex_lookup(tb, tl, segs[1].base, segs[1].bytes, segs[1].max_ts, &pos), 0);
  assert_true(pos < segs[1].bytes);
  ib[il / 2] ^= 1;
  assert_int_equal(rn_log_index_lookup(ib, il, segs[1].base, segs[1].bytes, segs[1].base, &pos), RN_ECORRUPT);
  assert_int_equal(rn_log_index_lookup(ib, 10, segs[1].base, segs[1].bytes, segs[1].base, &pos), RN_ECORRUPT);
  free(ib);
  free(tb);
  assert_int_equal(rn_log_close(log), 0);

  /* first_offset: only an empty directory starts there. */
  f->opts.first_offset = 1000;
  log = open_log(f, NULL);
  assert_int_equal(rn_log_start(log), 0); /* has segments: ignored */
  assert_int_equal(rn_log_close(log), 0);
  snprintf(f->logdir, sizeof(f->logdir), "%s/shard-1", f->dir);
  log = open_log(f, NULL);
  assert_int_equal(rn_log_start(log), 1000);
  assert_int_equal(append_wait(f, log, 1, 3, 10, f->now), 1000);
  assert_int_equal(rn_log_close(log), 0);
  log = open_log(f, NULL);
  assert_int_equal(rn_log_start(log), 1000);
  assert_int_equal(rn_log_next_offset(log), 1003);
  assert_int_equal(rn_log_close(log), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_append_read_roundtrip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_roll_and_lookups, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen_clean_and_rebuild, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen_after_crash_copy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retention_time_and_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_roll_by_age, setup, teardown),
      cmocka_unit_test_setup_teardown(test_interval_and_none, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
      cmocka_unit_test_setup_teardown(test_segments_and_index_lookups, setup, teardown),
      cmocka_unit_test(test_durability_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
