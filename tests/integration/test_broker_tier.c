/*
 * test_broker_tier.c — tiered storage through the real runneld with
 * --tier-dir (a local directory as the object store; docs/tiering.md),
 * driven by librunnel:
 *
 *   1. a tiered stream of 2 shards with tiny segments (segment_bytes 64 KiB)
 *      and a local retention of 1 s; 20 000 records produced with known
 *      timestamps (one ms apart, in the past);
 *   2. describe is polled (a bounded loop with a deadline, a short pause
 *      between polls, never instead of one) until only the active segment of
 *      each shard is local (every sealed one uploaded and removed locally),
 *      nothing waits for upload and every shard's local start moved past 0;
 *      the shard still starts at 0 (in the store);
 *   3. every shard read from EARLIEST with a consumer: every record
 *      byte-exact and in order, offsets dense from 0; the tier status shows
 *      bytes downloaded (the reads went to the store);
 *   4. AT_TIMESTAMP of a record that is only in the store: a consumer and
 *      list offsets both land on that record;
 *   5. set-retention changes the local retention of the tiered stream and
 *      is refused for an untiered one;
 *   6. restore: the broker stopped, its data directory removed, a new broker
 *      on the same tier_dir restores the stream (same shards and ranges),
 *      which serves every record the store holds, byte-exact; a second
 *      restore is refused (EEXIST), an unknown stream is ENOENT;
 *   7. delete removes the stream's objects under tier_dir (polled, bounded).
 * A broker without a store refuses a tiered stream and a restore (EINVAL)
 * and reports tiering off.
 *
 * Nothing asserts how long anything took: the deadlines only bound a run
 * whose condition never comes (then the test fails saying what it saw).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "broker_proc.h"
#include "runnel/runnel.h"
#include "testutil.h"

#define STREAM "tiered"
#define SHARDS 2
#define NREC 20000
#define MAX_VALUE 160
#define DEADLINE_MS 90000

typedef struct fx {
  char *tmp;
  char data_dir[600], tier_dir[600];
  rn_test_broker_t br;
  rn_client_t *cl;
  int64_t t0_ms;                 /* timestamp of record 0 */
  uint32_t shard[NREC];          /* where record seq went */
  uint64_t offset[NREC];
  uint64_t n[SHARDS];            /* records per shard */
  uint32_t *seq_at[SHARDS];      /* the record at each offset */
  uint64_t local_start[SHARDS];  /* from the last wait */
  rn_shard_info_t shards[SHARDS]; /* the ranges, as created */
} fx_t;

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Between two polls of a condition (never instead of one). */
static void pause_between_polls(void) {
  struct timespec ts = {0, 50 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

/* Record seq's value: its number, then printable bytes from a PRNG seeded
 * by it (so a wrong record or a shifted byte cannot match). */
static size_t make_value(uint32_t seq, char *buf) {
  uint64_t st = ((uint64_t)seq + 1) * 0x9E3779B97F4A7C15ull | 1;
  (void)rn_test_rand(&st);
  size_t len = 24 + (size_t)rn_test_rand_below(&st, MAX_VALUE - 24 + 1);
  int h = snprintf(buf, MAX_VALUE + 1, "rec:%08u:", seq);
  for (size_t i = (size_t)h; i < len; i++) buf[i] = (char)('!' + rn_test_rand_below(&st, 94));
  buf[len] = '\0';
  return len;
}

static void broker_start(fx_t *f, bool with_store) {
  const char *args[] = {"--tier-dir",  f->tier_dir,
                        "--set",       "segment_bytes=64KiB",
                        "--set",       "tier_chunk_bytes=16KiB", /* several ranged GETs per segment */
                        "--set",       "tier_cache_bytes=256KiB", /* far below the data: reads go to the store */
                        NULL};
  const char *plain[] = {"--set", "segment_bytes=64KiB", NULL};
  if (rn_test_broker_start(&f->br, f->data_dir, with_store ? args : plain) != 0)
    fail_msg("runneld did not start; see %s", f->br.log_path);
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = f->br.addr;
  assert_int_equal(rn_client_new(&cc, &f->cl), 0);
}

static void broker_stop(fx_t *f) {
  rn_client_destroy(f->cl);
  f->cl = NULL;
  int rc = rn_test_broker_stop(&f->br);
  if (rc != 0) fail_msg("runneld exited with status %d (want 0, a clean shutdown); see %s", rc, f->br.log_path);
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  f->tmp = rn_test_tmpdir();
  snprintf(f->data_dir, sizeof f->data_dir, "%s/data", f->tmp);
  snprintf(f->tier_dir, sizeof f->tier_dir, "%s/store", f->tmp);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->cl) broker_stop(f);
  for (int s = 0; s < SHARDS; s++) free(f->seq_at[s]);
  rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f);
  return 0;
}

/* ---- producing -------------------------------------------------------------------- */

typedef struct acks {
  pthread_mutex_t mu;
  fx_t *f;
  int done, failed;
  rn_err_t first;
} acks_t;
static acks_t g_acks = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_ack(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  uint32_t seq = (uint32_t)(uintptr_t)opaque;
  pthread_mutex_lock(&g_acks.mu);
  g_acks.done++;
  if (err) {
    if (!g_acks.failed++) g_acks.first = err;
  } else {
    g_acks.f->shard[seq] = shard;
    g_acks.f->offset[seq] = offset;
  }
  pthread_mutex_unlock(&g_acks.mu);
}

static void produce_all(fx_t *f) {
  g_acks.f = f;
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  rn_producer_t *p;
  assert_int_equal(rn_producer_new(f->cl, &pc, &p), 0);
  f->t0_ms = wall_ms() - 10 * 60 * 1000; /* all in the past: local retention by age applies at once */
  char key[32], val[MAX_VALUE + 1];
  for (uint32_t seq = 0; seq < NREC; seq++) {
    int kl = snprintf(key, sizeof key, "key-%u", seq % 101);
    size_t vl = make_value(seq, val);
    rn_message_t m = {.stream = STREAM,
                      .key = key,
                      .key_len = (size_t)kl,
                      .data = val,
                      .data_len = vl,
                      .timestamp_ms = f->t0_ms + seq,
                      .cb = on_ack,
                      .opaque = (void *)(uintptr_t)seq};
    rn_err_t err = rn_producer_send_message(p, &m);
    if (err) fail_msg("send %u: %s: %s", seq, rn_err_name(err), rn_last_error_message());
  }
  assert_int_equal(rn_producer_flush(p, 120000), 0);
  rn_producer_destroy(p);
  assert_int_equal(g_acks.done, NREC);
  if (g_acks.failed) fail_msg("%d records failed, the first with %s", g_acks.failed, rn_err_name(g_acks.first));
  /* The map offset -> record, per shard; offsets must be dense from 0. */
  for (int s = 0; s < SHARDS; s++) {
    f->n[s] = 0;
    f->seq_at[s] = calloc(NREC, sizeof(uint32_t));
  }
  for (uint32_t seq = 0; seq < NREC; seq++) {
    uint32_t s = f->shard[seq];
    assert_true(s < SHARDS);
    assert_true(f->offset[seq] < NREC);
    f->seq_at[s][f->offset[seq]] = seq;
    f->n[s]++;
  }
  for (int s = 0; s < SHARDS; s++) assert_true(f->n[s] > 1000); /* both shards hold many segments */
}

/* ---- waiting for the store ---------------------------------------------------------- */

static void wait_only_active_local(fx_t *f) {
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  unsigned polls = 0;
  for (;;) {
    rn_stream_desc_t *d = NULL;
    rn_err_t err = rn_stream_describe(f->cl, STREAM, &d);
    if (err) fail_msg("describe: %s: %s", rn_err_name(err), rn_last_error_message());
    assert_true(d->tiered);
    assert_int_equal(d->shard_count, SHARDS);
    bool done = true;
    uint64_t remote = 0, local = 0, backlog = 0;
    for (size_t i = 0; i < d->shard_count; i++) {
      const rn_shard_info_t *s = &d->shards[i];
      remote += s->remote_segments;
      local += s->local_segments;
      backlog += s->upload_backlog_segments;
      f->local_start[i] = s->local_start_offset;
      /* Done when only the active segment is local: every sealed segment is past the
       * 1 s local retention, so once it is uploaded it is removed locally. How many
       * segments a shard seals depends on how the producer batched (lz4 batches into
       * 64 KiB segments), so no ratio of remote to local is asserted. */
      if (s->local_start_offset == 0 || s->upload_backlog_segments || s->local_segments != 1 || s->remote_segments == 0)
        done = false;
    }
    polls++;
    if (done) {
      for (size_t i = 0; i < d->shard_count; i++) {
        const rn_shard_info_t *s = &d->shards[i];
        assert_int_equal(s->start_offset, 0);          /* the earliest is still offset 0: in the store */
        assert_int_equal(s->remote_start_offset, 0);
        assert_int_equal(s->end_offset, f->n[i]);      /* nothing lost, nothing extra */
        assert_true(s->remote_bytes > 0);
        f->shards[i] = *s;
      }
      print_message("after %u polls: %" PRIu64 " segments remote, %" PRIu64 " local; local starts %" PRIu64
                    " %" PRIu64 "\n",
                    polls, remote, local, f->local_start[0], f->local_start[1]);
      rn_stream_desc_free(d);
      return;
    }
    rn_stream_desc_free(d);
    if (mono_ms() > deadline)
      fail_msg("after %u polls: %" PRIu64 " segments remote, %" PRIu64 " local, %" PRIu64
               " waiting for upload; local starts %" PRIu64 " %" PRIu64 " (see %s)",
               polls, remote, local, backlog, f->local_start[0], f->local_start[1], f->br.log_path);
    pause_between_polls();
  }
}

/* ---- reading -------------------------------------------------------------------------- */

static void check_record(const fx_t *f, const char *who, uint32_t s, const rn_record_t *r) {
  if (r->offset >= f->n[s]) fail_msg("%s: shard %u: offset %" PRIu64 " past the %" PRIu64 " produced", who, s, r->offset, f->n[s]);
  uint32_t seq = f->seq_at[s][r->offset];
  char want[MAX_VALUE + 1];
  size_t wl = make_value(seq, want);
  if (r->value_len != wl || memcmp(r->value, want, wl) != 0)
    fail_msg("%s: shard %u offset %" PRIu64 ": %.*s, want record %u (%.*s)", who, s, r->offset, (int)r->value_len,
             (const char *)r->value, seq, (int)wl, want);
  if (r->timestamp != f->t0_ms + seq)
    fail_msg("%s: shard %u offset %" PRIu64 ": timestamp %" PRId64 ", want %" PRId64, who, s, r->offset, r->timestamp,
             f->t0_ms + seq);
}

/* Read shard s from (kind, value) to end; every record checked, offsets
 * consecutive from `from`. Returns how many. */
static uint64_t read_shard(const fx_t *f, const char *who, uint32_t s, rn_pos_kind_t kind, int64_t value, uint64_t from,
                           uint64_t end) {
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, STREAM, s, kind, value, &c), 0);
  uint64_t next = from, n = 0;
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  while (next < end) {
    const rn_record_t *r;
    rn_err_t err = rn_consumer_poll(c, 1000, &r);
    if (err == RN_EAGAIN) {
      if (mono_ms() > deadline) fail_msg("%s: shard %u: stuck at offset %" PRIu64 " of %" PRIu64, who, s, next, end);
      continue;
    }
    if (err) fail_msg("%s: shard %u at offset %" PRIu64 ": %s: %s", who, s, next, rn_err_name(err), rn_last_error_message());
    if (r->offset != next) fail_msg("%s: shard %u: offset %" PRIu64 ", want %" PRIu64, who, s, r->offset, next);
    check_record(f, who, s, r);
    next++;
    n++;
  }
  rn_consumer_destroy(c);
  return n;
}

static void read_everything(fx_t *f) {
  rn_tier_status_t *before = NULL, *after = NULL;
  assert_int_equal(rn_tier_status(f->cl, &before), 0);
  assert_true(before->enabled);
  assert_string_equal(before->store, "localdir");
  uint64_t total = 0;
  for (uint32_t s = 0; s < SHARDS; s++) total += read_shard(f, "consumer from EARLIEST", s, RN_POS_EARLIEST, 0, 0, f->n[s]);
  assert_int_equal(total, NREC);
  assert_int_equal(rn_tier_status(f->cl, &after), 0);
  /* Everything below the local starts came from the store. */
  if (after->bytes_downloaded <= before->bytes_downloaded)
    fail_msg("no bytes downloaded from the store (%" PRIu64 " before, %" PRIu64 " after)", before->bytes_downloaded,
             after->bytes_downloaded);
  assert_true(after->cache_misses > before->cache_misses);
  assert_int_equal(after->corrupt_objects, 0);
  print_message("read %" PRIu64 " records byte-exact from EARLIEST; %" PRIu64 " bytes downloaded, GETs in flight at most %u\n",
                total, after->bytes_downloaded - before->bytes_downloaded, after->gets_inflight_max);
  rn_tier_status_free(before);
  rn_tier_status_free(after);
}

/* A record only the store holds: the first record of shard 0 below its
 * local start past offset 0. AT_TIMESTAMP of its timestamp lands on it. */
static void at_timestamp_remote(fx_t *f) {
  uint32_t s = 0;
  assert_true(f->local_start[s] > 10);
  uint64_t off = f->local_start[s] / 2;
  uint32_t seq = f->seq_at[s][off];
  int64_t ts = f->t0_ms + seq;
  /* Records of one shard have increasing timestamps (seq order), so the
   * first record at or after ts is this one. */
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, STREAM, s, RN_POS_TIMESTAMP, ts, &c), 0);
  const rn_record_t *r = NULL;
  rn_err_t err;
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  while ((err = rn_consumer_poll(c, 1000, &r)) == RN_EAGAIN)
    if (mono_ms() > deadline) fail_msg("AT_TIMESTAMP: nothing came");
  if (err) fail_msg("AT_TIMESTAMP %" PRId64 ": %s: %s", ts, rn_err_name(err), rn_last_error_message());
  if (r->offset != off) fail_msg("AT_TIMESTAMP %" PRId64 ": offset %" PRIu64 ", want %" PRIu64, ts, r->offset, off);
  check_record(f, "AT_TIMESTAMP", s, r);
  rn_consumer_destroy(c);
  /* One ms later than a record's timestamp: the next record of the shard. */
  rn_offsets_t *o = NULL;
  assert_int_equal(rn_stream_list_offsets(f->cl, STREAM, RN_POS_TIMESTAMP, ts, &o), 0);
  assert_int_equal(o->count, SHARDS);
  for (size_t i = 0; i < o->count; i++) {
    const rn_shard_offsets_t *so = &o->shards[i];
    assert_int_equal(so->err, 0);
    assert_int_equal(so->start_offset, 0);
    if (so->shard == s) assert_int_equal(so->offset, off);
    /* In the other shard too, the first record at or after ts. */
    uint64_t want = 0;
    while (want < f->n[so->shard] && f->t0_ms + f->seq_at[so->shard][want] < ts) want++;
    assert_int_equal(so->offset, want);
  }
  rn_offsets_free(o);
  print_message("AT_TIMESTAMP into the store: shard %u offset %" PRIu64 " (local start %" PRIu64 ")\n", s, off,
                f->local_start[s]);
}

static void set_retention(fx_t *f) {
  rn_retention_t r = {.retention_ms = -1, .retention_bytes = 0, .local_retention_ms = 3600000};
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_set_retentions(f->cl, STREAM, &r, &d);
  if (err) fail_msg("set-retention: %s: %s", rn_err_name(err), rn_last_error_message());
  assert_true(d->tiered);
  assert_int_equal(d->local_retention_ms, 3600000);
  assert_int_equal(d->retention_ms, -1);
  rn_stream_desc_free(d);
  /* Unchanged when 0: only the total moves. */
  r = (rn_retention_t){.retention_ms = 30ll * 86400 * 1000};
  assert_int_equal(rn_stream_set_retentions(f->cl, STREAM, &r, &d), 0);
  assert_int_equal(d->retention_ms, 30ll * 86400 * 1000);
  assert_int_equal(d->local_retention_ms, 3600000);
  rn_stream_desc_free(d);
  /* Back to a short local retention, and a stream without tiering has none. */
  r = (rn_retention_t){.retention_ms = -1, .local_retention_ms = 1000};
  assert_int_equal(rn_stream_set_retentions(f->cl, STREAM, &r, NULL), 0);
  rn_stream_config_t plain = {.name = "plain", .shard_count = 1};
  assert_int_equal(rn_stream_create(f->cl, &plain, NULL), 0);
  r = (rn_retention_t){.local_retention_ms = 1000};
  assert_int_equal(rn_stream_set_retentions(f->cl, "plain", &r, NULL), RN_EINVAL);
  assert_non_null(strstr(rn_last_error_message(), "not tiered"));
  assert_int_equal(rn_stream_describe(f->cl, "plain", &d), 0);
  assert_false(d->tiered);
  rn_stream_desc_free(d);
}

/* ---- restore and delete ------------------------------------------------------------------ */

static void restore_onto_empty(fx_t *f) {
  broker_stop(f);
  char kept[700];
  snprintf(kept, sizeof kept, "%s/runneld-before-restore.log", f->tmp);
  rename(f->br.log_path, kept); /* the log lives in the data directory */
  rn_test_rmtree(f->data_dir);
  broker_start(f, true);
  rn_stream_desc_t *d = NULL;
  assert_int_equal(rn_stream_describe(f->cl, STREAM, &d), RN_ENOSTREAM); /* nothing local */
  rn_err_t err = rn_stream_restore(f->cl, STREAM, &d);
  if (err) fail_msg("restore: %s: %s (see %s)", rn_err_name(err), rn_last_error_message(), f->br.log_path);
  assert_true(d->tiered);
  assert_int_equal(d->shard_count, SHARDS);
  assert_int_equal(d->local_retention_ms, 1000);
  uint64_t total = 0;
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_shard_info_t *s = &d->shards[i];
    /* The same ranges; everything the store holds: at least all that was
     * below the local start before (the active segment was never sealed,
     * so it is not in the store). */
    assert_memory_equal(s->hash_key_start, f->shards[i].hash_key_start, RN_HASH_KEY_BYTES);
    assert_memory_equal(s->hash_key_end, f->shards[i].hash_key_end, RN_HASH_KEY_BYTES);
    if (s->start_offset != 0 || s->end_offset < f->local_start[i] || s->end_offset > f->n[i])
      fail_msg("restored shard %zu holds [%" PRIu64 ", %" PRIu64 "), want [0, >= %" PRIu64 "] of %" PRIu64, i,
               s->start_offset, s->end_offset, f->local_start[i], f->n[i]);
    total += read_shard(f, "consumer after restore", (uint32_t)i, RN_POS_EARLIEST, 0, 0, s->end_offset);
  }
  rn_stream_desc_free(d);
  print_message("restored onto an empty data directory: %" PRIu64 " records byte-exact\n", total);
  assert_int_equal(rn_stream_restore(f->cl, STREAM, NULL), RN_EEXIST);
  assert_int_equal(rn_stream_restore(f->cl, "never-was", NULL), RN_ENOENT);
}

/* Regular files under dir whose path contains what. */
static unsigned count_files(const char *dir, const char *what) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  unsigned n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(p, &st) != 0) continue;
    if (S_ISDIR(st.st_mode))
      n += count_files(p, what);
    else if (S_ISREG(st.st_mode) && strstr(p, what))
      n++;
  }
  closedir(d);
  return n;
}

static void delete_removes_objects(fx_t *f) {
  char mark[64];
  snprintf(mark, sizeof mark, "/%s-", STREAM); /* the shard prefixes: <hash8>/<cluster>/<stream>-<uid>/ */
  unsigned before = count_files(f->tier_dir, mark);
  assert_true(before > 0);
  assert_int_equal(rn_stream_delete(f->cl, STREAM), 0);
  uint64_t deadline = mono_ms() + DEADLINE_MS;
  unsigned left;
  rn_tier_status_t *ts = NULL;
  for (;;) {
    left = count_files(f->tier_dir, mark);
    assert_int_equal(rn_tier_status(f->cl, &ts), 0);
    bool jobs = ts->delete_jobs != 0;
    rn_tier_status_free(ts);
    if (left == 0 && !jobs) break;
    if (mono_ms() > deadline) fail_msg("after the delete %u of %u objects are left under %s", left, before, f->tier_dir);
    pause_between_polls();
  }
  print_message("delete removed the stream's %u objects from the store\n", before);
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void test_tiered_stream(void **state) {
  fx_t *f = *state;
  broker_start(f, true);
  rn_stream_config_t sc = {.name = STREAM,
                           .shard_count = SHARDS,
                           .retention_ms = -1,
                           .durability = RN_DURABILITY_SYNC,
                           .tiered = true,
                           .local_retention_ms = 1000};
  rn_stream_desc_t *d = NULL;
  rn_err_t err = rn_stream_create(f->cl, &sc, &d);
  if (err) fail_msg("create: %s: %s", rn_err_name(err), rn_last_error_message());
  assert_true(d->tiered);
  assert_int_equal(d->local_retention_ms, 1000);
  assert_int_equal(d->local_retention_bytes, -1);
  rn_stream_desc_free(d);
  produce_all(f);
  wait_only_active_local(f);
  read_everything(f);
  at_timestamp_remote(f);
  set_retention(f);
  restore_onto_empty(f);
  delete_removes_objects(f);
}

static void test_no_store(void **state) {
  fx_t *f = *state;
  broker_start(f, false);
  rn_stream_config_t sc = {.name = "t", .shard_count = 1, .tiered = true};
  assert_int_equal(rn_stream_create(f->cl, &sc, NULL), RN_EINVAL);
  assert_non_null(strstr(rn_last_error_message(), "tiering needs s3_bucket or tier_dir"));
  assert_int_equal(rn_stream_restore(f->cl, "t", NULL), RN_EINVAL);
  rn_tier_status_t *ts = NULL;
  assert_int_equal(rn_tier_status(f->cl, &ts), 0);
  assert_false(ts->enabled);
  rn_tier_status_free(ts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tiered_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
