/*
 * test_tier_faults.c — a tiered broker when its object store fails (issue
 * 13, "What it must show" 3), against the real runneld:
 *
 *   test_tier_faults outage-dir | outage-s3rver | corrupt
 *
 * outage-dir     the store is a local directory (tier_dir); the outage
 *                moves it away and puts a plain file in its place, so every
 *                store operation fails (ENOTDIR) until it is put back;
 * outage-s3rver  the store is s3rver (rn_s3peer_start, tests/support/s3peer.h); the outage
 *                stops it by PID and later starts it again on the same port
 *                and data directory (exit 77 where s3rver cannot run);
 *
 *   records are produced before and during the outage: every one is
 *   acknowledged (produce never waits for the store; tier_disk_high_water
 *   is 100 so back-pressure stays out of it), the upload backlog
 *   (runnel_tier_upload_backlog_bytes, and `tier status`) grows while the
 *   store is gone and uploads fail (runnel_tier_request_errors_total{op="put"}
 *   rises before the store comes back), and once it is back the backlog drains to 0 (polled with
 *   a deadline) and every record reads back byte-exact from offset 0;
 *
 * corrupt        tier_dir; streams A (2 shards) and B (1 shard) are produced
 *                and uploaded and their oldest segments leave the local
 *                disk; then one byte in the middle of A's shard 0's first
 *                remote .log object is flipped. A consumer of A/0 from
 *                offset 0 gets RN_ECORRUPT no later than the damaged batch
 *                (and again when it retries) and never a record that is not
 *                byte-exact what was produced; runnel_tier_corrupt_objects_total
 *                is above 0; the broker keeps serving: A/0 from the next
 *                segment on, A/1 and B from offset 0 (remote data) read
 *                byte-exact, and produce to A still works.
 *
 * Nothing waits on time: every wait polls a condition with a deadline that
 * only bounds a failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "s3peer.h"
#include "tiertest.h"
#include "httpclient.h"
#include "runnel/batch.h"
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


#define DEADLINE_MS 240000
#define MAX_STREAMS 2
#define MAX_VALUE 400

typedef enum { T_OUTAGE_DIR, T_OUTAGE_S3RVER, T_CORRUPT } which_t;
static which_t g_which;

/* ---- the fixture ------------------------------------------------------------------------ */

typedef struct produced {
  const char *stream;
  uint32_t shards;
  uint32_t n, cap;
  uint32_t *shard; /* by seq */
  uint64_t *offset;
} produced_t;

typedef struct fx {
  char *tmp;
  char data_dir[600];
  char store_dir[700];
  rn_s3peer_t peer; /* outage-s3rver */
  char set[8][800];
  int nset;
  rn_test_broker_t br;
  rn_client_t *cl;
  produced_t p[MAX_STREAMS];
} fx_t;

static fx_t g_fx;

static void broker_start(fx_t *f) {
  const char *args[40];
  int n = 0;
  static const char *const common[] = {
      "segment_bytes=64KiB",
      "tier_disk_high_water=100",
      "tier_request_timeout=2s", /* a dead store fails a request soon (and it is retried later) */
  };
  for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
    args[n++] = "--set";
    args[n++] = common[i];
  }
  for (int i = 0; i < f->nset; i++) {
    args[n++] = "--set";
    args[n++] = f->set[i];
  }
  args[n] = NULL;
  if (rn_test_broker_start(&f->br, f->data_dir, args) != 0) fail_msg("runneld did not start; see %s", f->br.log_path);
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = f->br.addr;
  assert_int_equal(rn_client_new(&cc, &f->cl), 0);
}

static long long metric(const fx_t *f, const char *name) {
  rn_hc_t c;
  long long v = -2;
  if (rn_hc_connect(&c, f->br.http_port) == 0) v = rn_hc_metric(&c, name);
  rn_hc_close(&c);
  if (v < 0) fail_msg("/metrics: %s %s", name, v == -1 ? "is not exported" : "could not be read");
  return v;
}

static void ctl_ok(fx_t *f, const char *const *args, char **out_keep) {
  char *out, *err;
  int rc = rn_test_ctl_run(RN_TEST_RUNNELCTL, f->br.addr, args, f->tmp, &out, &err);
  if (rc != 0) fail_msg("runnelctl %s %s: exit %d\nstdout: %s\nstderr: %s", args[0], args[1] ? args[1] : "", rc, out,
                        err);
  if (out_keep)
    *out_keep = out;
  else
    free(out);
  free(err);
}

static void create_tiered(fx_t *f, const char *stream, const char *shards) {
  const char *args[] = {"stream", "create", stream, "--shards", shards, "--tiered", "--local-retention", "1s",
                        "--retention", "forever", NULL};
  ctl_ok(f, args, NULL);
}

/* `tier status --json` printed (the operator's view), and parsed. */
static void show_tier_status(fx_t *f, const char *when) {
  static const char *const args[] = {"--json", "tier", "status", NULL};
  char *out;
  ctl_ok(f, args, &out);
  json_error_t jerr;
  json_t *doc = json_loads(out, 0, &jerr);
  if (!doc) fail_msg("tier status --json: not JSON (%s): %s", jerr.text, out);
  char *s = json_dumps(doc, JSON_COMPACT);
  print_message("tier status %s: %.600s\n", when, s ? s : "?");
  free(s);
  json_decref(doc);
  free(out);
}

/* ---- records ------------------------------------------------------------------------------ */

static size_t make_value(const char *stream, uint32_t seq, char *buf) {
  uint64_t st = ((uint64_t)seq + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(unsigned char)stream[0] << 56;
  st |= 1;
  (void)rn_test_rand(&st);
  size_t len = 24 + (size_t)rn_test_rand_below(&st, MAX_VALUE - 24 + 1);
  int h = snprintf(buf, MAX_VALUE + 1, "%s:%08u:", stream, seq);
  for (size_t i = (size_t)h; i < len; i++) buf[i] = (char)('!' + rn_test_rand_below(&st, 94));
  buf[len] = '\0';
  return len;
}

typedef struct ack_ctx {
  pthread_mutex_t mu;
  produced_t *p;
  uint32_t failed;
  rn_err_t first;
} ack_ctx_t;
static ack_ctx_t g_ack = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  uint32_t seq = (uint32_t)(uintptr_t)opaque;
  pthread_mutex_lock(&g_ack.mu);
  if (err) {
    if (!g_ack.failed++) g_ack.first = err;
  } else {
    g_ack.p->shard[seq] = shard;
    g_ack.p->offset[seq] = offset;
  }
  pthread_mutex_unlock(&g_ack.mu);
}

/* Produce n more records to p->stream; every one must be acknowledged. */
static void produce(fx_t *f, produced_t *p, uint32_t n) {
  if (p->n + n > p->cap) {
    p->cap = (p->n + n) * 2;
    p->shard = realloc(p->shard, p->cap * sizeof(*p->shard));
    p->offset = realloc(p->offset, p->cap * sizeof(*p->offset));
    assert_non_null(p->shard);
    assert_non_null(p->offset);
  }
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.max_batch_bytes = 8192;
  pc.linger_ms = 1;
  rn_producer_t *pr;
  assert_int_equal(rn_producer_new(f->cl, &pc, &pr), 0);
  pthread_mutex_lock(&g_ack.mu);
  g_ack.p = p;
  g_ack.failed = 0;
  pthread_mutex_unlock(&g_ack.mu);
  char val[MAX_VALUE + 1], key[16];
  for (uint32_t i = 0; i < n; i++) {
    uint32_t seq = p->n + i;
    p->shard[seq] = UINT32_MAX;
    size_t len = make_value(p->stream, seq, val);
    int kl = snprintf(key, sizeof key, "k%u", seq % 211u);
    rn_err_t err = rn_producer_send(pr, p->stream, key, (size_t)kl, val, len, on_delivery, (void *)(uintptr_t)seq);
    if (err) fail_msg("send %s/%u: %s %s", p->stream, seq, rn_err_name(err), rn_last_error_message());
  }
  rn_err_t err = rn_producer_flush(pr, 120000);
  if (err) fail_msg("flush: %s %s", rn_err_name(err), rn_last_error_message());
  rn_producer_destroy(pr);
  if (g_ack.failed)
    fail_msg("%u of %u records to %s failed (first: %s): produce must not depend on the store", g_ack.failed, n,
             p->stream, rn_err_name(g_ack.first));
  for (uint32_t i = 0; i < n; i++) assert_int_not_equal(p->shard[p->n + i], UINT32_MAX);
  p->n += n;
}

static uint64_t shard_count(const produced_t *p, uint32_t shard) {
  uint64_t n = 0;
  for (uint32_t q = 0; q < p->n; q++) n += p->shard[q] == shard;
  return n;
}

/* Index (shard, offset) -> seq for fast checks: table[shard][offset]. */
typedef struct index_s {
  uint32_t *v[8];
  uint64_t n[8];
} index_t;

static void index_build(const produced_t *p, index_t *ix) {
  memset(ix, 0, sizeof(*ix));
  for (uint32_t s = 0; s < p->shards; s++) {
    ix->n[s] = shard_count(p, s);
    ix->v[s] = malloc((ix->n[s] + 1) * sizeof(uint32_t));
    assert_non_null(ix->v[s]);
  }
  for (uint32_t q = 0; q < p->n; q++) {
    uint32_t s = p->shard[q];
    assert_true(p->offset[q] < ix->n[s]); /* dense from 0 */
    ix->v[s][p->offset[q]] = q;
  }
}

static void index_free(index_t *ix) {
  for (int s = 0; s < 8; s++) free(ix->v[s]);
}

/* Read shard from offset `from` to its end with a consumer; every record
 * byte-exact. Returns 0, or the first error (with *at = the position). */
static rn_err_t read_shard(fx_t *f, const produced_t *p, const index_t *ix, uint32_t shard, uint64_t from,
                           uint64_t *at) {
  rn_consumer_t *c;
  assert_int_equal(rn_consumer_new(f->cl, p->stream, shard, RN_POS_OFFSET, (int64_t)from, &c), 0);
  uint64_t next = from, deadline = rn_tt_now_ms() + DEADLINE_MS;
  char want[MAX_VALUE + 1];
  rn_err_t result = 0;
  while (next < ix->n[shard]) {
    const rn_record_t *rec;
    rn_err_t err = rn_consumer_poll(c, 1000, &rec);
    if (err == RN_EAGAIN) {
      if (rn_tt_now_ms() > deadline) fail_msg("%s/%u: stuck at %" PRIu64, p->stream, shard, next);
      continue;
    }
    if (err) {
      result = err;
      break;
    }
    if (rec->offset != next) fail_msg("%s/%u: offset %" PRIu64 " where %" PRIu64 " was next", p->stream, shard,
                                      rec->offset, next);
    size_t wl = make_value(p->stream, ix->v[shard][next], want);
    if (rec->value_len != wl || memcmp(rec->value, want, wl) != 0)
      fail_msg("%s/%u offset %" PRIu64 ": served bytes that differ from what was produced: \"%.*s\"", p->stream, shard,
               next, (int)(rec->value_len < 60 ? rec->value_len : 60), (const char *)rec->value);
    next++;
  }
  rn_consumer_destroy(c);
  *at = next;
  return result;
}

static void read_all_ok(fx_t *f, const produced_t *p, const char *what) {
  index_t ix;
  index_build(p, &ix);
  for (uint32_t s = 0; s < p->shards; s++) {
    uint64_t at;
    rn_err_t err = read_shard(f, p, &ix, s, 0, &at);
    if (err) fail_msg("%s: %s/%u at %" PRIu64 ": %s %s", what, p->stream, s, at, rn_err_name(err),
                      rn_last_error_message());
  }
  print_message("%s: %s: all %u records byte-exact from offset 0\n", what, p->stream, p->n);
  index_free(&ix);
}

/* describe: sum of remote segments and whether every shard's local start
 * moved past 0 (its oldest records are in the store only). */
static bool oldest_remote(fx_t *f, const char *stream, uint64_t *remote, uint64_t *local_start0) {
  const char *args[] = {"--json", "stream", "describe", stream, NULL};
  char *out;
  ctl_ok(f, args, &out);
  json_error_t jerr;
  json_t *d = json_loads(out, 0, &jerr);
  if (!d) fail_msg("describe: not JSON: %s", out);
  free(out);
  json_t *shards = json_object_get(d, "shards");
  bool all = json_array_size(shards) > 0;
  *remote = 0;
  for (size_t i = 0; i < json_array_size(shards); i++) {
    json_t *so = json_array_get(shards, i);
    json_t *rs = json_object_get(so, "remote_segments"), *ls = json_object_get(so, "local_start_offset"),
           *bl = json_object_get(so, "upload_backlog_segments");
    if (!json_is_integer(rs) || !json_is_integer(ls) || !json_is_integer(bl)) {
      char *s = json_dumps(so, JSON_COMPACT);
      fail_msg("describe: no remote_segments / local_start_offset / upload_backlog_segments in %s", s);
    }
    *remote += (uint64_t)json_integer_value(rs);
    if (i == 0 && local_start0) *local_start0 = (uint64_t)json_integer_value(ls);
    if (json_integer_value(ls) == 0 || json_integer_value(bl) != 0) all = false;
  }
  json_decref(d);
  return all;
}

static void wait_oldest_remote(fx_t *f, const char *stream) {
  uint64_t deadline = rn_tt_now_ms() + DEADLINE_MS, remote = 0;
  while (!oldest_remote(f, stream, &remote, NULL)) {
    if (rn_tt_now_ms() > deadline) fail_msg("%s: the oldest segments never left the local disk (%" PRIu64 " remote)", stream,
                                      remote);
    rn_tt_pause(100);
  }
  print_message("%s: %" PRIu64 " segments remote, every shard's local start past 0\n", stream, remote);
}

/* ---- the outage ------------------------------------------------------------------------------ */

static void outage_begin(fx_t *f) {
  if (g_which == T_OUTAGE_DIR) {
    char away[800];
    snprintf(away, sizeof away, "%s.away", f->store_dir);
    assert_int_equal(rename(f->store_dir, away), 0);
    FILE *fp = fopen(f->store_dir, "w"); /* a file where the directory was: ENOTDIR below it */
    assert_non_null(fp);
    fclose(fp);
    return;
  }
  rn_s3peer_stop(&f->peer);
}

static void outage_end(fx_t *f) {
  if (g_which == T_OUTAGE_DIR) {
    char away[800];
    snprintf(away, sizeof away, "%s.away", f->store_dir);
    assert_int_equal(unlink(f->store_dir), 0);
    assert_int_equal(rename(away, f->store_dir), 0);
    return;
  }
  char why[512];
  if (rn_s3peer_restart(&f->peer, why, sizeof why) != 0) fail_msg("s3rver did not start again: %s", why);
}

static void test_outage(void **state) {
  (void)state;
  fx_t *f = &g_fx;
  produced_t *p = &f->p[0];
  *p = (produced_t){.stream = "outage", .shards = 2};
  create_tiered(f, p->stream, "2");
  produce(f, p, 3000);
  wait_oldest_remote(f, p->stream);
  long long up_before = metric(f, "runnel_tier_uploaded_bytes_total");
  print_message("store up: %lld bytes uploaded, backlog %lld bytes\n", up_before,
                metric(f, "runnel_tier_upload_backlog_bytes"));

  long long put_err0 = metric(f, "runnel_tier_request_errors_total{op=\"put\"}");
  outage_begin(f);
  print_message("store down (%s)\n", g_which == T_OUTAGE_DIR ? "tier_dir replaced by a file" : "s3rver stopped");
  produce(f, p, 3000); /* every record acknowledged while the store is gone */
  long long b1 = 0;
  uint64_t deadline = rn_tt_now_ms() + DEADLINE_MS;
  while ((b1 = metric(f, "runnel_tier_upload_backlog_bytes")) <= 0) {
    if (rn_tt_now_ms() > deadline) fail_msg("no upload backlog after producing into a dead store");
    rn_tt_pause(100);
  }
  produce(f, p, 3000);
  long long b2 = 0;
  deadline = rn_tt_now_ms() + DEADLINE_MS;
  while ((b2 = metric(f, "runnel_tier_upload_backlog_bytes")) <= b1) {
    if (rn_tt_now_ms() > deadline) fail_msg("the backlog did not grow (%lld bytes, then %lld) while the store is down", b1, b2);
    rn_tt_pause(100);
  }
  /* an upload was tried against the dead store and failed (so the drain
   * below is a retry, not a first attempt) */
  long long put_err = 0;
  deadline = rn_tt_now_ms() + DEADLINE_MS;
  while ((put_err = metric(f, "runnel_tier_request_errors_total{op=\"put\"}")) <= put_err0) {
    if (rn_tt_now_ms() > deadline) fail_msg("no PUT failed while the store was down (errors %lld)", put_err);
    rn_tt_pause(100);
  }
  print_message("store down: all %u records acknowledged; backlog %lld bytes, then %lld; %lld PUTs failed\n", p->n,
                b1, b2, put_err - put_err0);
  show_tier_status(f, "while the store is down");

  outage_end(f);
  print_message("store back\n");
  long long b = 0;
  unsigned polls = 0;
  deadline = rn_tt_now_ms() + DEADLINE_MS;
  while ((b = metric(f, "runnel_tier_upload_backlog_bytes")) != 0) {
    polls++;
    if (rn_tt_now_ms() > deadline) fail_msg("the backlog did not drain after the store came back (%lld bytes left)", b);
    rn_tt_pause(100);
  }
  wait_oldest_remote(f, p->stream);
  long long up_after = metric(f, "runnel_tier_uploaded_bytes_total");
  assert_true(up_after > up_before);
  print_message("backlog drained to 0 (%u polls); %lld bytes uploaded in all\n", polls, up_after);
  show_tier_status(f, "after the outage");
  read_all_ok(f, p, "after the outage");
}

/* ---- the corrupt object ------------------------------------------------------------------------- */

typedef struct found {
  char path[1200];
  uint64_t base;
} found_t;
static found_t g_found;
static const char *g_want_comp;

/* The .log object of stream A, shard 0, with the lowest base. */
static int find_log(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (flag != FTW_F) return 0;
  size_t l = strlen(path);
  if (l < 4 || strcmp(path + l - 4, ".log") != 0 || !strstr(path, g_want_comp)) return 0;
  const char *file = strrchr(path, '/') + 1;
  const char *shard = file - 2;
  while (shard > path && shard[-1] != '/') shard--;
  const char *d = shard;
  while (*d && (*d < '0' || *d > '9')) d++;
  if (strtoul(d, NULL, 10) != 0) return 0;
  uint64_t base = strtoull(file, NULL, 10);
  if (!g_found.path[0] || base < g_found.base) {
    snprintf(g_found.path, sizeof g_found.path, "%s", path);
    g_found.base = base;
  }
  return 0;
}

static void test_corrupt(void **state) {
  (void)state;
  fx_t *f = &g_fx;
  produced_t *a = &f->p[0], *b = &f->p[1];
  *a = (produced_t){.stream = "A", .shards = 2};
  *b = (produced_t){.stream = "B", .shards = 1};
  create_tiered(f, a->stream, "2");
  create_tiered(f, b->stream, "1");
  produce(f, a, 4000);
  produce(f, b, 2000);
  wait_oldest_remote(f, a->stream);
  wait_oldest_remote(f, b->stream);
  long long corrupt0 = metric(f, "runnel_tier_corrupt_objects_total");

  /* A/0's first remote segment: decode its batches, flip a byte in the middle */
  memset(&g_found, 0, sizeof g_found);
  g_want_comp = "/A-";
  nftw(f->store_dir, find_log, 16, FTW_PHYS);
  if (!g_found.path[0]) fail_msg("no .log object of stream A shard 0 under %s", f->store_dir);
  int fd = open(g_found.path, O_RDWR);
  assert_true(fd >= 0);
  struct stat sb;
  assert_int_equal(fstat(fd, &sb), 0);
  size_t len = (size_t)sb.st_size;
  uint8_t *buf = malloc(len);
  assert_non_null(buf);
  assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
  size_t flip = len / 2, pos = 0;
  uint64_t bad_base = UINT64_MAX, seg_next = g_found.base;
  while (pos < len) {
    rn_batch_header_t h;
    size_t need = 0;
    assert_int_equal(rn_batch_verify(buf + pos, len - pos, &h, &need), 0); /* whole before the flip */
    if (pos <= flip && flip < pos + need) bad_base = h.base_offset;
    seg_next = rn_batch_last_offset(&h) + 1;
    pos += need;
  }
  assert_true(bad_base != UINT64_MAX);
  uint8_t byte = (uint8_t)(buf[flip] ^ 0x5a);
  assert_int_equal(pwrite(fd, &byte, 1, (off_t)flip), 1);
  assert_int_equal(fsync(fd), 0);
  close(fd);
  free(buf);
  uint64_t local_start0 = 0, remote = 0;
  (void)oldest_remote(f, a->stream, &remote, &local_start0);
  print_message("flipped byte %zu of %s (segment [%" PRIu64 ", %" PRIu64 "), batch at %" PRIu64
                "; A/0 local start %" PRIu64 ")\n",
                flip, g_found.path, g_found.base, seg_next, bad_base, local_start0);
  assert_true(seg_next <= local_start0); /* the segment is in the store only */

  index_t ix;
  index_build(a, &ix);
  uint64_t at = 0;
  rn_err_t err = read_shard(f, a, &ix, 0, g_found.base, &at);
  if (err != RN_ECORRUPT)
    fail_msg("A/0 from %" PRIu64 ": %s at %" PRIu64 " (%s), want ECORRUPT no later than the damaged batch at %" PRIu64,
             g_found.base, err ? rn_err_name(err) : "no error", at, rn_last_error_message(), bad_base);
  if (at > bad_base) fail_msg("A/0: records up to %" PRIu64 " were served, past the damaged batch at %" PRIu64, at, bad_base);
  print_message("A/0 from %" PRIu64 ": ECORRUPT at %" PRIu64 " (%s)\n", g_found.base, at, rn_last_error_message());
  /* asked again: still an error, never the data */
  err = read_shard(f, a, &ix, 0, at, &at);
  if (err != RN_ECORRUPT) fail_msg("A/0 read again at the damaged range: %s, want ECORRUPT", rn_err_name(err));
  long long corrupt = metric(f, "runnel_tier_corrupt_objects_total");
  if (corrupt <= corrupt0) fail_msg("runnel_tier_corrupt_objects_total %lld (was %lld): the corruption was not counted",
                                    corrupt, corrupt0);
  print_message("runnel_tier_corrupt_objects_total %lld\n", corrupt);

  /* the broker keeps serving everything else */
  err = read_shard(f, a, &ix, 0, seg_next, &at);
  if (err) fail_msg("A/0 from the next segment (%" PRIu64 "): %s at %" PRIu64 " %s", seg_next, rn_err_name(err), at,
                    rn_last_error_message());
  err = read_shard(f, a, &ix, 1, 0, &at);
  if (err) fail_msg("A/1 from 0: %s at %" PRIu64 " %s", rn_err_name(err), at, rn_last_error_message());
  index_free(&ix);
  read_all_ok(f, b, "another stream, after the corruption");
  produce(f, a, 500);
  print_message("A/0 past the damaged segment, A/1 and B read byte-exact; produce to A still acknowledged\n");
  show_tier_status(f, "after the corruption");
}

/* ---- main ---------------------------------------------------------------------------------------- */

static int probe_tiering(char *why, size_t whylen) {
  static char out[1 << 16];
  const char *rd[] = {rn_test_runneld_path(), "--help", NULL};
  if (rn_test_run(rd, out, sizeof out) != 0 || !strstr(out, "tier_dir")) {
    snprintf(why, whylen, "this runneld (%s) has no tiering yet: no tier_dir key in --help (branch i13-broker)", rd[0]);
    return 77;
  }
  const char *env = getenv("RUNNELCTL");
  const char *rc[] = {env && *env ? env : RN_TEST_RUNNELCTL, "--help", NULL};
  if (rn_test_run(rc, out, sizeof out) != 0 || !strstr(out, "tier")) {
    snprintf(why, whylen, "this runnelctl (%s) has no `tier status` yet (branch i13-broker)", rc[0]);
    return 77;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: test_tier_faults outage-dir|outage-s3rver|corrupt\n");
    return 2;
  }
  if (strcmp(argv[1], "outage-dir") == 0)
    g_which = T_OUTAGE_DIR;
  else if (strcmp(argv[1], "outage-s3rver") == 0)
    g_which = T_OUTAGE_S3RVER;
  else if (strcmp(argv[1], "corrupt") == 0)
    g_which = T_CORRUPT;
  else {
    fprintf(stderr, "test_tier_faults: unknown case %s\n", argv[1]);
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
  snprintf(f->store_dir, sizeof f->store_dir, "%s/store", f->tmp);
  if (g_which == T_OUTAGE_S3RVER) {
    int src = rn_s3peer_start(&f->peer, RN_S3PEER_S3RVER, f->store_dir, why, sizeof why) ? 77 : 0;
    if (src != 0) {
      printf("%s: %s\n", src == 77 ? "SKIP" : "FAIL", why);
      rn_test_rmtree(f->tmp);
      return src == 77 ? 77 : 1;
    }
    snprintf(f->set[f->nset++], sizeof f->set[0], "s3_endpoint=%.200s", f->peer.endpoint);
    snprintf(f->set[f->nset++], sizeof f->set[0], "s3_bucket=%.200s", f->peer.bucket);
    snprintf(f->set[f->nset++], sizeof f->set[0], "s3_path_style=true");
    setenv("AWS_ACCESS_KEY_ID", f->peer.access_key, 1);
    setenv("AWS_SECRET_ACCESS_KEY", f->peer.secret_key, 1);
  } else {
    snprintf(f->set[f->nset++], sizeof f->set[0], "tier_dir=%.700s", f->store_dir);
  }
  broker_start(f);
  const struct CMUnitTest outage[] = {cmocka_unit_test(test_outage)};
  const struct CMUnitTest corrupt[] = {cmocka_unit_test(test_corrupt)};
  int failed = g_which == T_CORRUPT ? cmocka_run_group_tests(corrupt, NULL, NULL)
                                    : cmocka_run_group_tests(outage, NULL, NULL);
  /* after a failed assertion a producer or consumer may still hang off the
   * client (the test jumped out of its scope): leave it to the exit */
  if (!failed) rn_client_destroy(f->cl);
  if (f->br.pid) {
    int rc = rn_test_broker_stop(&f->br);
    if (rc != 0) {
      fprintf(stderr, "runneld exited with status %d (want 0); see %s\n", rc, f->br.log_path);
      failed++;
    }
  }
  rn_s3peer_stop(&f->peer); /* no-op unless running */
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (failed || (keep && *keep))
    fprintf(stderr, "kept %s\n", f->tmp);
  else
    rn_test_rmtree(f->tmp);
  free(f->tmp);
  for (int i = 0; i < MAX_STREAMS; i++) {
    free(f->p[i].shard);
    free(f->p[i].offset);
  }
  return failed ? 1 : 0;
}
