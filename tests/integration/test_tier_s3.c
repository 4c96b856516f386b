/*
 * test_tier_s3.c — tiered storage end to end (issue 13, "What it must show"
 * 2 and 4), against the real runneld and a real object store on loopback:
 *
 *   test_tier_s3 dir|s3rver|minio [records]
 *
 *   dir     tier_dir: a local directory as the store (always available)
 *   s3rver  the npm S3 stand-in (does not check signatures)
 *   minio   MinIO (verifies SigV4, implements multipart)
 * both S3 peers installed by tests/support/s3peers-install.sh, started on
 * 127.0.0.1 with a port and a data directory chosen at run time
 * (rn_s3peer_start, tests/support/s3peer.h) and stopped by PID; when one cannot
 * be installed here the test exits 77 (CTest SKIP) saying why.
 *
 * One run:
 *   1. a stream of 4 shards, tiny segments (segment_bytes 64 KiB), tiered
 *      with a 1 s local retention and no total retention, and 100k records
 *      produced through librunnel, each acknowledged at (shard, offset).
 *      Record timestamps are the producer's and deterministic (2 ms apart,
 *      two hours in the past), so local retention applies as soon as a
 *      segment is uploaded and AT_TIMESTAMP has a known answer;
 *   2. `stream describe` is polled (bounded deadline) until most segments
 *      are remote, no upload is pending and every shard's local start is
 *      past 0 — the oldest records are then in the store only;
 *   3. three readers each read every record byte-exact and in order, from
 *      offset 0 of every shard (below the local start: the store):
 *        - `runnelctl --json consume --from earliest` (a child process),
 *        - a librunnel consumer-group member starting at EARLIEST,
 *        - boto3 GetRecords from TRIM_HORIZON through the broker's Kinesis
 *          API (tests/conformance/tier_getrecords.py under Debian's python3);
 *   4. AT_TIMESTAMP into remote data: ListOffsets(TIMESTAMP) and a consumer
 *      at that timestamp give, per shard, the first record at or after it,
 *      which lies below the local start; boto3's AT_TIMESTAMP iterator too;
 *   5. restore: the broker is stopped, its data directory wiped, a fresh
 *      broker starts on the same store, `runnelctl stream restore` brings
 *      the stream back, and every record the store holds (everything below
 *      the old local start: the unsealed tail was never uploaded) is read
 *      back byte-exact.
 *
 * No sleep synchronises anything: waits poll a condition with a deadline
 * that only bounds a failure; nothing asserts on time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "s3peer.h"
#include "tiertest.h"
#include "runnel/runnel.h"
#include "testutil.h"

#ifndef RN_TEST_RUNNELCTL
#define RN_TEST_RUNNELCTL "runnelctl"
#endif
#ifndef RN_TEST_PYTHON
#define RN_TEST_PYTHON "/usr/bin/python3"
#endif
#ifndef RN_TEST_CONFORMANCE_DIR
#define RN_TEST_CONFORMANCE_DIR "tests/conformance"
#endif


#define STREAM "tiered"
#define SHARDS 4
#define GROUP "g-tier"
#define MAX_VALUE 240
#define REMOTE_DEADLINE_MS 240000 /* failure bound of the wait for uploads */

typedef enum { ST_DIR, ST_S3RVER, ST_MINIO } store_kind_t;
static const char *const store_names[] = {"dir", "s3rver", "minio"};

static store_kind_t g_kind = ST_DIR;
static uint32_t g_nrec = 100000;

/* ---- the object store under test ------------------------------------------------ */

typedef struct store {
  store_kind_t kind;
  char dir[700]; /* ST_DIR: tier_dir; S3 peers: their data directory */
  rn_s3peer_t peer;
  char set[8][800]; /* "--set" values for runneld */
  int nset;
} store_t;

/* Start the store (a directory needs nothing). Returns 0; 77 with why when
 * the peer cannot be installed here; -1 with why when it did not run. */
static int store_start(store_t *st, store_kind_t kind, const char *tmp, char *why, size_t whylen) {
  memset(st, 0, sizeof(*st));
  st->kind = kind;
  snprintf(st->dir, sizeof st->dir, "%s/store", tmp);
  if (kind == ST_DIR) {
    snprintf(st->set[st->nset++], sizeof st->set[0], "tier_dir=%s", st->dir);
    return 0;
  }
  int rc = rn_s3peer_start(&st->peer, kind == ST_MINIO ? RN_S3PEER_MINIO : RN_S3PEER_S3RVER, st->dir, why, whylen) ? 77 : 0;
  if (rc != 0) return rc;
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_endpoint=%s", st->peer.endpoint);
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_bucket=%s", st->peer.bucket);
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_region=us-east-1");
  snprintf(st->set[st->nset++], sizeof st->set[0], "s3_path_style=true");
  /* the broker takes its credentials from the standard environment */
  setenv("AWS_ACCESS_KEY_ID", st->peer.access_key, 1);
  setenv("AWS_SECRET_ACCESS_KEY", st->peer.secret_key, 1);
  return 0;
}

static void store_stop(store_t *st) {
  if (st->kind != ST_DIR) rn_s3peer_stop(&st->peer);
}

/* ---- the fixture -------------------------------------------------------------------- */

typedef struct fx {
  char *tmp;
  char data_dir[600];
  store_t st;
  rn_test_broker_t br;
  rn_client_t *cl;
  /* what was produced: record seq went to (shard[seq], offset[seq]) */
  uint32_t *shard;
  uint64_t *offset;
  int64_t t0_ms; /* timestamp of record 0 */
  /* per shard: how many records, and the seq at each offset */
  uint64_t n[SHARDS];
  uint32_t *seq_at[SHARDS];
  /* per shard, from the last describe */
  uint64_t local_start[SHARDS];
} fx_t;

static fx_t g_fx;

static void broker_start(fx_t *f) {
  const char *args[40];
  int n = 0;
  static const char *const common[] = {
      "segment_bytes=64KiB",     /* tiny segments: many of them remote */
      "tier_chunk_bytes=64KiB",  /* several ranged GETs per segment and read-ahead */
      "tier_cache_bytes=1MiB",   /* far below the data: every reader goes to the store */
      "tier_segment_max_age=1s", /* active segments sealed by age: all of it reaches the store */
  };
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
    args[n++] = "--set";
    args[n++] = common[i];
  }
  for (int i = 0; i < f->st.nset; i++) {
    args[n++] = "--set";
    args[n++] = f->st.set[i];
  }
  args[n] = NULL;
  if (rn_test_broker_start(&f->br, f->data_dir, args) != 0) fail_msg("runneld did not start; see %s", f->br.log_path);
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

/* Print sanitizer reports (all of the log with RUNNEL_TEST_VERBOSE). */
static void show_log(const char *path) {
  const char *verbose = getenv("RUNNEL_TEST_VERBOSE");
  bool on = verbose && *verbose;
  FILE *fp = fopen(path, "r");
  if (!fp) return;
  char line[1024];
  while (fgets(line, sizeof line, fp)) {
    if (!on && (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:") || strstr(line, "Assertion"))) {
      on = true;
      fprintf(stderr, "---- runneld reported (%s) ----\n", path);
    }
    if (on) fputs(line, stderr);
  }
  fclose(fp);
}

/* ---- runnelctl ---------------------------------------------------------------------- */

/* Run `runnelctl --broker ADDR args...` (NULL-terminated) to completion;
 * *out / *err get its stdout and stderr (malloc'd). */
static int ctl(fx_t *f, char **out, char **err, const char *const *args) {
  int rc = rn_test_ctl_run(RN_TEST_RUNNELCTL, f->br.addr, args, f->tmp, out, err);
  assert_true(rc >= 0);
  return rc;
}

/* runnelctl --json args...: asserts exit 0 and returns the parsed document. */
static json_t *ctl_json(fx_t *f, const char *const *args) {
  return rn_tt_ctl_json(RN_TEST_RUNNELCTL, f->br.addr, f->tmp, args);
}

/* ---- the records -------------------------------------------------------------------- */

/* Value of record seq: "r<seq>:" then printable ASCII from a PRNG, 16 to
 * MAX_VALUE bytes in all (no tab, no newline: tier_getrecords.py's file). */
static size_t make_value(uint32_t seq, char *buf) {
  uint64_t st = ((uint64_t)seq + 1) * 0x9E3779B97F4A7C15ull | 1;
  (void)rn_test_rand(&st);
  size_t len = 16 + (size_t)rn_test_rand_below(&st, MAX_VALUE - 16 + 1);
  int h = snprintf(buf, MAX_VALUE + 1, "r%07u:", seq);
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=-_.,;!?#";
  for (size_t i = (size_t)h; i < len; i++) buf[i] = alphabet[rn_test_rand_below(&st, sizeof alphabet - 1)];
  buf[len] = '\0';
  return len;
}

static int64_t rec_ts(const fx_t *f, uint32_t seq) { return f->t0_ms + 2 * (int64_t)seq; }

typedef struct acks {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t acked, failed;
  rn_err_t first_err;
} acks_t;
static acks_t g_acks = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  uint32_t seq = (uint32_t)(uintptr_t)opaque;
  pthread_mutex_lock(&g_acks.mu);
  if (err) {
    if (!g_acks.failed++) g_acks.first_err = err;
  } else {
    g_fx.shard[seq] = shard;
    g_fx.offset[seq] = offset;
    g_acks.acked++;
  }
  pthread_cond_broadcast(&g_acks.cv);
  pthread_mutex_unlock(&g_acks.mu);
}

static void produce_all(fx_t *f) {
  f->shard = calloc(g_nrec, sizeof *f->shard);
  f->offset = calloc(g_nrec, sizeof *f->offset);
  assert_non_null(f->shard);
  assert_non_null(f->offset);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.max_batch_bytes = 16384; /* several batches per 64 KiB segment */
  pc.linger_ms = 2;
  rn_producer_t *p;
  rn_err_t err = rn_producer_new(f->cl, &pc, &p);
  if (err) fail_msg("producer: %s %s", rn_err_name(err), rn_last_error_message());
  char val[MAX_VALUE + 1], key[16];
  for (uint32_t seq = 0; seq < g_nrec; seq++) {
    size_t len = make_value(seq, val);
    int kl = snprintf(key, sizeof key, "k%u", seq % 1009u);
    f->shard[seq] = UINT32_MAX;
    rn_message_t m = {.stream = STREAM, .key = key, .key_len = (size_t)kl, .data = val, .data_len = len,
                      .timestamp_ms = rec_ts(f, seq), .cb = on_delivery, .opaque = (void *)(uintptr_t)seq};
    err = rn_producer_send_message(p, &m);
    if (err) fail_msg("send %u: %s %s", seq, rn_err_name(err), rn_last_error_message());
  }
  err = rn_producer_flush(p, 300000);
  if (err) fail_msg("flush: %s %s", rn_err_name(err), rn_last_error_message());
  rn_producer_destroy(p);
  pthread_mutex_lock(&g_acks.mu);
  uint32_t acked = g_acks.acked, failed = g_acks.failed;
  rn_err_t first = g_acks.first_err;
  pthread_mutex_unlock(&g_acks.mu);
  if (failed) fail_msg("%u of %u records failed (first: %s)", failed, g_nrec, rn_err_name(first));
  assert_int_equal(acked, g_nrec);

  /* a fresh stream: each shard's offsets are dense from 0, in send order */
  for (int s = 0; s < SHARDS; s++) f->n[s] = 0;
  for (uint32_t seq = 0; seq < g_nrec; seq++) {
    assert_true(f->shard[seq] < SHARDS);
    f->n[f->shard[seq]]++;
  }
  for (int s = 0; s < SHARDS; s++) {
    f->seq_at[s] = malloc((f->n[s] ? f->n[s] : 1) * sizeof(uint32_t));
    assert_non_null(f->seq_at[s]);
    for (uint64_t o = 0; o < f->n[s]; o++) f->seq_at[s][o] = UINT32_MAX;
  }
  for (uint32_t seq = 0; seq < g_nrec; seq++) {
    uint32_t s = f->shard[seq];
    uint64_t o = f->offset[seq];
    if (o >= f->n[s] || f->seq_at[s][o] != UINT32_MAX)
      fail_msg("record %u acknowledged at shard %u offset %" PRIu64 ": not dense from 0 (shard has %" PRIu64 ")", seq,
               s, o, f->n[s]);
    f->seq_at[s][o] = seq;
  }
  print_message("produced %u records (shards: %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "), all acknowledged\n",
                g_nrec, f->n[0], f->n[1], f->n[2], f->n[3]);
}

/* The next record a reader got from shard s: must be at offset next[s]
 * (in order, nothing skipped) and byte-exact. */
static void check_next(const fx_t *f, const char *reader, uint64_t *next, uint32_t s, uint64_t offset,
                       const void *data, size_t len) {
  if (s >= SHARDS) fail_msg("%s: record from shard %u", reader, s);
  if (offset != next[s])
    fail_msg("%s: shard %u: offset %" PRIu64 " where %" PRIu64 " was next (out of order or a gap)", reader, s, offset,
             next[s]);
  if (offset >= f->n[s]) fail_msg("%s: shard %u: offset %" PRIu64 " was never produced", reader, s, offset);
  char want[MAX_VALUE + 1];
  size_t wl = make_value(f->seq_at[s][offset], want);
  if (len != wl || memcmp(data, want, wl) != 0)
    fail_msg("%s: shard %u offset %" PRIu64 ": %zu bytes \"%.40s...\", want %zu bytes \"%.40s...\"", reader, s,
             offset, len, (const char *)data, wl, want);
  next[s]++;
}

/* ---- waiting for the store ---------------------------------------------------------- */

typedef struct tier_view {
  uint64_t remote_segments, local_segments, backlog_segments;
  uint64_t local_start[SHARDS], start[SHARDS], end[SHARDS];
  bool all_local_start_moved;
} tier_view_t;

static void describe_tier(fx_t *f, tier_view_t *v) {
  memset(v, 0, sizeof(*v));
  static const char *const args[] = {"stream", "describe", STREAM, NULL};
  json_t *d = ctl_json(f, args);
  json_t *shards = json_object_get(d, "shards");
  assert_true(json_is_array(shards));
  assert_int_equal(json_array_size(shards), SHARDS);
  v->all_local_start_moved = true;
  for (size_t i = 0; i < SHARDS; i++) {
    json_t *so = json_array_get(shards, i);
    uint32_t s = (uint32_t)rn_tt_jint(so, "shard");
    assert_true(s < SHARDS);
    v->remote_segments += (uint64_t)rn_tt_jint(so, "remote_segments");
    v->local_segments += (uint64_t)rn_tt_jint(so, "local_segments");
    v->backlog_segments += (uint64_t)rn_tt_jint(so, "upload_backlog_segments");
    v->local_start[s] = (uint64_t)rn_tt_jint(so, "local_start_offset");
    v->start[s] = (uint64_t)rn_tt_jint(so, "start_offset");
    v->end[s] = (uint64_t)rn_tt_jint(so, "end_offset");
    if (v->local_start[s] == 0) v->all_local_start_moved = false;
  }
  json_decref(d);
}

/* Poll until most segments are remote, nothing waits for upload and every
 * shard's local start moved past 0. */
static void wait_mostly_remote(fx_t *f) {
  uint64_t deadline = rn_tt_now_ms() + REMOTE_DEADLINE_MS;
  tier_view_t v;
  unsigned polls = 0;
  for (;;) {
    describe_tier(f, &v);
    polls++;
    uint64_t total = v.remote_segments + v.local_segments;
    if (v.all_local_start_moved && v.backlog_segments == 0 && total > 0 && v.remote_segments * 10 >= total * 8) break;
    if (rn_tt_now_ms() > deadline)
      fail_msg("after %u s: %" PRIu64 " segments remote, %" PRIu64 " local, %" PRIu64 " waiting for upload; "
               "local starts %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " (see %s)",
               REMOTE_DEADLINE_MS / 1000, v.remote_segments, v.local_segments, v.backlog_segments, v.local_start[0],
               v.local_start[1], v.local_start[2], v.local_start[3], f->br.log_path);
    rn_tt_pause(100);
  }
  for (int s = 0; s < SHARDS; s++) {
    f->local_start[s] = v.local_start[s];
    assert_int_equal(v.start[s], 0);        /* earliest is still offset 0: in the store */
    assert_int_equal(v.end[s], f->n[s]);    /* nothing lost, nothing extra */
  }
  print_message("after %u polls: %" PRIu64 " segments remote, %" PRIu64 " local; local starts %" PRIu64 " %" PRIu64
                " %" PRIu64 " %" PRIu64 "\n",
                polls, v.remote_segments, v.local_segments, v.local_start[0], v.local_start[1], v.local_start[2],
                v.local_start[3]);
}

/* ---- the readers -------------------------------------------------------------------- */

static void read_with_runnelctl(fx_t *f) {
  static const char *const args[] = {"--json", "consume", STREAM, "--from", "earliest", NULL};
  char *out, *err;
  int rc = ctl(f, &out, &err, args);
  if (rc != 0) fail_msg("runnelctl consume: exit %d; stderr: %s", rc, err);
  uint64_t next[SHARDS] = {0};
  uint64_t total = 0;
  char *p = out;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (!nl) fail_msg("runnelctl consume: unterminated last line: %.80s", p);
    json_error_t jerr;
    json_t *o = json_loadb(p, (size_t)(nl - p), 0, &jerr);
    if (!o) fail_msg("runnelctl consume: not JSON: %.*s", (int)(nl - p), p);
    json_t *d = json_object_get(o, "data");
    if (!json_is_string(d)) fail_msg("runnelctl consume: no string data: %.*s", (int)(nl - p), p);
    check_next(f, "runnelctl consume", next, (uint32_t)rn_tt_jint(o, "shard"), (uint64_t)rn_tt_jint(o, "offset"),
               json_string_value(d), json_string_length(d));
    json_decref(o);
    total++;
    p = nl + 1;
  }
  for (int s = 0; s < SHARDS; s++)
    if (next[s] != f->n[s])
      fail_msg("runnelctl consume: shard %d: %" PRIu64 " of %" PRIu64 " records (stderr: %s)", s, next[s], f->n[s], err);
  print_message("runnelctl consume --from earliest: %" PRIu64 " records byte-exact, in order\n", total);
  free(out);
  free(err);
}

static void read_with_group(fx_t *f) {
  rn_group_conf_t gc;
  rn_group_conf_init(&gc);
  gc.start_kind = RN_POS_EARLIEST;
  gc.client_id = "test_tier_s3";
  rn_group_consumer_t *m;
  rn_err_t err = rn_group_consumer_new(f->cl, STREAM, GROUP, &gc, &m);
  if (err) fail_msg("group join: %s %s", rn_err_name(err), rn_last_error_message());
  uint64_t next[SHARDS] = {0}, total = 0;
  uint64_t deadline = rn_tt_now_ms() + REMOTE_DEADLINE_MS;
  while (total < g_nrec) {
    const rn_record_t *rec;
    uint32_t shard;
    err = rn_group_poll(m, 1000, &rec, &shard);
    if (err == RN_EAGAIN) {
      if (rn_tt_now_ms() > deadline) fail_msg("group: %" PRIu64 " of %u records before the deadline", total, g_nrec);
      continue;
    }
    if (err) fail_msg("group poll after %" PRIu64 " records: %s %s", total, rn_err_name(err), rn_last_error_message());
    check_next(f, "consumer group", next, shard, rec->offset, rec->value, rec->value_len);
    total++;
  }
  err = rn_group_consumer_close(m);
  if (err) fail_msg("group close: %s %s", rn_err_name(err), rn_last_error_message());
  /* the group's checkpoints are at every shard's end */
  rn_group_desc_t *d = NULL;
  assert_int_equal(rn_group_describe(f->cl, STREAM, GROUP, &d), 0);
  for (size_t i = 0; i < d->shard_count; i++) {
    assert_int_equal(d->shards[i].lag_records, 0);
    assert_int_equal(d->shards[i].checkpoint, f->n[d->shards[i].shard]);
  }
  rn_group_desc_free(d);
  print_message("consumer group from earliest: %" PRIu64 " records byte-exact, in order, checkpoints at the end\n",
                total);
}

/* Records of a shard read by a plain consumer from (kind, value) up to
 * end; returns the first offset read. */
static uint64_t read_shard_native(fx_t *f, const char *reader, uint32_t s, rn_pos_kind_t kind, int64_t value,
                                  uint64_t from, uint64_t end) {
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, STREAM, s, kind, value, &c), 0);
  uint64_t next[SHARDS] = {0};
  next[s] = from;
  uint64_t first = UINT64_MAX;
  uint64_t deadline = rn_tt_now_ms() + REMOTE_DEADLINE_MS;
  while (next[s] < end) {
    const rn_record_t *rec;
    rn_err_t err = rn_consumer_poll(c, 1000, &rec);
    if (err == RN_EAGAIN) {
      if (rn_tt_now_ms() > deadline) fail_msg("%s: shard %u stuck at %" PRIu64 " of %" PRIu64, reader, s, next[s], end);
      continue;
    }
    if (err) fail_msg("%s: shard %u at %" PRIu64 ": %s %s", reader, s, next[s], rn_err_name(err), rn_last_error_message());
    if (first == UINT64_MAX) first = rec->offset;
    check_next(f, reader, next, s, rec->offset, rec->value, rec->value_len);
  }
  rn_consumer_destroy(c);
  return first;
}

/* First offset of shard s whose timestamp is >= ts (n[s] when none). */
static uint64_t first_at_or_after(const fx_t *f, uint32_t s, int64_t ts) {
  for (uint64_t o = 0; o < f->n[s]; o++)
    if (rec_ts(f, f->seq_at[s][o]) >= ts) return o;
  return f->n[s];
}

/* AT_TIMESTAMP at 30% of the records' time span, in whole seconds (what
 * botocore sends): below every shard's local start. */
static int64_t pick_timestamp_s(const fx_t *f) {
  int64_t t = rec_ts(f, g_nrec * 3 / 10);
  return (t + 999) / 1000;
}

static void read_at_timestamp(fx_t *f, int64_t ts_s) {
  int64_t ts = ts_s * 1000;
  rn_offsets_t *offs = NULL;
  rn_err_t err = rn_stream_list_offsets(f->cl, STREAM, RN_POS_TIMESTAMP, ts, &offs);
  if (err) fail_msg("list offsets at %" PRId64 ": %s %s", ts, rn_err_name(err), rn_last_error_message());
  assert_int_equal(offs->count, SHARDS);
  for (size_t i = 0; i < offs->count; i++) {
    const rn_shard_offsets_t *so = &offs->shards[i];
    assert_int_equal(so->err, 0);
    uint64_t want = first_at_or_after(f, so->shard, ts);
    if (so->offset != want)
      fail_msg("ListOffsets(TIMESTAMP %" PRId64 "): shard %u at %" PRIu64 ", want %" PRIu64, ts, so->shard, so->offset,
               want);
    if (want >= f->local_start[so->shard])
      fail_msg("shard %u: the timestamp's offset %" PRIu64 " is not below the local start %" PRIu64
               " (the test meant to read remote data)",
               so->shard, want, f->local_start[so->shard]);
    uint64_t first = read_shard_native(f, "consumer at AT_TIMESTAMP", so->shard, RN_POS_TIMESTAMP, ts, want,
                                       f->local_start[so->shard] + 1 < f->n[so->shard] ? f->local_start[so->shard] + 1
                                                                                       : f->n[so->shard]);
    assert_int_equal(first, want);
  }
  rn_offsets_free(offs);
  print_message("AT_TIMESTAMP %" PRId64 " (remote data): every shard starts at the first record at or after it\n", ts);
}

static void read_with_boto3(fx_t *f, int64_t ts_s) {
  char expect[700];
  snprintf(expect, sizeof expect, "%s/expect.tsv", f->tmp);
  FILE *fp = fopen(expect, "w");
  assert_non_null(fp);
  char val[MAX_VALUE + 1];
  for (uint32_t s = 0; s < SHARDS; s++)
    for (uint64_t o = 0; o < f->n[s]; o++) {
      uint32_t seq = f->seq_at[s][o];
      make_value(seq, val);
      fprintf(fp, "%u\t%" PRId64 "\t%s\n", s, rec_ts(f, seq), val);
    }
  assert_int_equal(fclose(fp), 0);
  char endpoint[64], tsarg[32], script[600];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", f->br.http_port);
  snprintf(tsarg, sizeof tsarg, "%" PRId64, ts_s);
  snprintf(script, sizeof script, "%s/tier_getrecords.py", RN_TEST_CONFORMANCE_DIR);
  const char *argv[] = {RN_TEST_PYTHON, script, "--endpoint", endpoint, "--stream", STREAM, "--expect", expect,
                        "--at-timestamp", tsarg, NULL};
  char *out = malloc(1 << 16);
  assert_non_null(out);
  int rc = rn_test_run(argv, out, 1 << 16);
  fputs(out, stdout); /* print_message truncates long text */
  fflush(stdout);
  if (rc != 0) fail_msg("tier_getrecords.py: exit %d", rc);
  free(out);
}

/* ---- restore ------------------------------------------------------------------------ */

/* Poll until every record is in the store: each shard's active segment was
 * sealed by age (tier_segment_max_age), uploaded and left the local disk,
 * so its local start is its end. */
static void wait_all_remote(fx_t *f) {
  uint64_t deadline = rn_tt_now_ms() + REMOTE_DEADLINE_MS;
  for (;;) {
    tier_view_t v;
    describe_tier(f, &v);
    bool all = v.backlog_segments == 0;
    for (int s = 0; s < SHARDS; s++) all = all && v.local_start[s] == f->n[s] && v.end[s] == f->n[s];
    if (all) return;
    if (rn_tt_now_ms() > deadline)
      fail_msg("not everything reached the store: local starts %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
               " of %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 ", %" PRIu64 " waiting for upload (see %s)",
               v.local_start[0], v.local_start[1], v.local_start[2], v.local_start[3], f->n[0], f->n[1], f->n[2],
               f->n[3], v.backlog_segments, f->br.log_path);
    rn_tt_pause(100);
  }
}

/* Everything is in the store and the broker stops gracefully (it mirrors
 * every manifest first): a restore onto an empty data directory brings back
 * every record. */
static void restore_onto_empty(fx_t *f) {
  wait_all_remote(f);
  uint64_t stored_end[SHARDS];
  memcpy(stored_end, f->n, sizeof stored_end);
  broker_stop(f);
  char kept[700];
  snprintf(kept, sizeof kept, "%s/runneld-before-restore.log", f->tmp);
  rename(f->br.log_path, kept); /* the log lives in the data directory */
  rn_test_rmtree(f->data_dir);
  broker_start(f);
  static const char *const args[] = {"stream", "restore", STREAM, NULL};
  char *out, *err;
  int rc = ctl(f, &out, &err, args);
  if (rc != 0) fail_msg("runnelctl stream restore: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
  free(out);
  free(err);
  rn_stream_desc_t *d = NULL;
  rn_err_t e = rn_stream_describe(f->cl, STREAM, &d);
  if (e) fail_msg("describe after restore: %s %s", rn_err_name(e), rn_last_error_message());
  assert_int_equal(d->shard_count, SHARDS);
  uint64_t total = 0;
  for (size_t i = 0; i < d->shard_count; i++) {
    const rn_shard_info_t *si = &d->shards[i];
    if (si->start_offset != 0 || si->end_offset != stored_end[si->index])
      fail_msg("restored shard %u holds [%" PRIu64 ", %" PRIu64 "), want [0, >= %" PRIu64 ") (of %" PRIu64 ")",
               si->index, si->start_offset, si->end_offset, stored_end[si->index], f->n[si->index]);
    read_shard_native(f, "consumer after restore", si->index, RN_POS_EARLIEST, 0, 0, si->end_offset);
    total += si->end_offset;
  }
  rn_stream_desc_free(d);
  print_message("restored onto an empty data directory: %" PRIu64 " records byte-exact\n", total);
}

/* ---- the test ----------------------------------------------------------------------- */

/* The steps share the fixture; each is its own cmocka test so that one
 * reader failing still lets the others (and restore) run and report. The
 * first one creates, produces and waits; the rest need it to have passed. */
static bool g_ready;

static void test_produce_until_remote(void **state) {
  (void)state;
  fx_t *f = &g_fx;
  static const char *const args[] = {"stream", "create", STREAM, "--shards", "4", "--tiered", "--local-retention",
                                     "1s", "--retention", "forever", NULL};
  char *out, *err;
  int rc = ctl(f, &out, &err, args);
  if (rc != 0) fail_msg("runnelctl stream create --tiered: exit %d\nstdout: %s\nstderr: %s", rc, out, err);
  free(out);
  free(err);
  produce_all(f);
  wait_mostly_remote(f);
  g_ready = true;
}

static void need_ready(void) {
  if (!g_ready) fail_msg("the stream was not produced and uploaded (the first step failed)");
}

static void test_runnelctl_consume(void **state) {
  (void)state;
  need_ready();
  read_with_runnelctl(&g_fx);
}

static void test_group_consume(void **state) {
  (void)state;
  need_ready();
  read_with_group(&g_fx);
}

static void test_at_timestamp(void **state) {
  (void)state;
  need_ready();
  read_at_timestamp(&g_fx, pick_timestamp_s(&g_fx));
}

static void test_boto3_getrecords(void **state) {
  (void)state;
  need_ready();
  read_with_boto3(&g_fx, pick_timestamp_s(&g_fx));
}

static void test_restore(void **state) {
  (void)state;
  need_ready();
  restore_onto_empty(&g_fx);
}

/* ---- main: probe what this tree has, then run --------------------------------------- */

/* 0 when runneld and runnelctl have tiering; 77 with why otherwise. */
static int probe_tiering(char *why, size_t whylen) {
  static char out[1 << 16];
  const char *rd[] = {rn_test_runneld_path(), "--help", NULL};
  if (rn_test_run(rd, out, sizeof out) != 0 || !strstr(out, "tier_dir")) {
    snprintf(why, whylen, "this runneld (%s) has no tiering yet: no tier_dir key in --help (branch i13-broker)", rd[0]);
    return 77;
  }
  const char *env = getenv("RUNNELCTL");
  const char *rc[] = {env && *env ? env : RN_TEST_RUNNELCTL, "--help", NULL};
  if (rn_test_run(rc, out, sizeof out) != 0 || !strstr(out, "restore") || !strstr(out, "tier")) {
    snprintf(why, whylen, "this runnelctl (%s) has no `tier status` / `stream restore` yet (branch i13-broker)", rc[0]);
    return 77;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_tier_s3 dir|s3rver|minio [records]\n");
    return 2;
  }
  bool found = false;
  for (int k = 0; k < 3; k++)
    if (strcmp(argv[1], store_names[k]) == 0) {
      g_kind = (store_kind_t)k;
      found = true;
    }
  if (!found) {
    fprintf(stderr, "test_tier_s3: unknown store %s (dir, s3rver, minio)\n", argv[1]);
    return 2;
  }
  if (argc > 2) g_nrec = (uint32_t)strtoul(argv[2], NULL, 10);
  if (g_nrec < 1000) {
    fprintf(stderr, "test_tier_s3: at least 1000 records\n");
    return 2;
  }
  char why[512];
  if (probe_tiering(why, sizeof why) != 0) {
    printf("SKIP: %s\n", why);
    return 77;
  }
  fx_t *f = &g_fx;
  f->tmp = rn_test_tmpdir();
  snprintf(f->data_dir, sizeof f->data_dir, "%s/data", f->tmp);
  /* boto3 and the AWS SDK look at ~/.aws: point them at empty files */
  char cfg[700];
  snprintf(cfg, sizeof cfg, "%s/aws-config", f->tmp);
  fclose(fopen(cfg, "w"));
  setenv("AWS_CONFIG_FILE", cfg, 1);
  setenv("AWS_SHARED_CREDENTIALS_FILE", cfg, 1);
  int src = store_start(&f->st, g_kind, f->tmp, why, sizeof why);
  if (src != 0) {
    printf("%s: %s\n", src == 77 ? "SKIP" : "FAIL", why);
    rn_test_rmtree(f->tmp);
    return src == 77 ? 77 : 1;
  }
  /* two hours ago, whole seconds: old enough for local retention at once */
  f->t0_ms = ((int64_t)time(NULL) - 7200) * 1000;
  print_message("store %s, %u records, work in %s\n", store_names[g_kind], g_nrec, f->tmp);
  broker_start(f);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_produce_until_remote), cmocka_unit_test(test_runnelctl_consume),
      cmocka_unit_test(test_group_consume),        cmocka_unit_test(test_at_timestamp),
      cmocka_unit_test(test_boto3_getrecords),     cmocka_unit_test(test_restore),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);

  /* after a failed assertion a producer or consumer may still hang off the
   * client (the test jumped out of its scope): leave it to the exit */
  if (!failed) rn_client_destroy(f->cl);
  if (f->br.pid) {
    int rc = rn_test_broker_stop(&f->br);
    if (rc != 0) {
      fprintf(stderr, "runneld exited with status %d at the end (want 0)\n", rc);
      failed++;
    }
  }
  show_log(f->br.log_path);
  store_stop(&f->st);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (keep && *keep)
    fprintf(stderr, "kept %s\n", f->tmp);
  else
    rn_test_rmtree(f->tmp);
  free(f->tmp);
  free(f->shard);
  free(f->offset);
  for (int s = 0; s < SHARDS; s++) free(f->seq_at[s]);
  return failed ? 1 : 0;
}
