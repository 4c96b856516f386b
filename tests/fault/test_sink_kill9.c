/*
 * test_sink_kill9.c — kill -9 of the real runneld while an archive sink
 * delivers (issue 14): every acknowledged record ends up in exactly one
 * object, none missing, none twice.
 *
 *   test_sink_kill9 [rounds] [seed] [dir|s3rver] [with-term]
 *
 * A stream of 2 shards and two NDJSON.gz sinks to file:///<tmp>/out/ (dir)
 * or to s3://<bucket>/k9/ on an s3rver (tests/support/s3peer.h; skip 77 when
 * it cannot be installed), 64 KiB buffers and a 50 ms interval, so flushes
 * happen all the time, by size and by time: k9sink with a constant prefix
 * (one object per flush), k9multi with multi/b=!{field:b}/ (three objects per
 * flush, PUT in parallel, so a kill can fall between them). Each round
 * starts runneld on the same data directory and produces records with
 * unique ids ({"id":"r<round>-<seq>",...}, a librunnel idempotent producer)
 * and SIGKILLs the broker at a point drawn from the seeded RNG (seed and
 * draws printed), one of:
 *
 *   ack      at the K-th acknowledgement, from the delivery callback, while
 *            the producer is mid-batch;
 *   objects  once the sink has written k more objects this run (describe's
 *            `objects`, polled between sends), the producer still sending;
 *   flush    M records produced and acknowledged, then describe polled until
 *            a shard has a flush in progress (pending range), killed at once
 *            (when none shows within 5 s everything was delivered: the kill
 *            follows then; the bound only picks a point);
 *   term     (only with with-term) as flush, but SIGTERM instead of
 *            SIGKILL: runneld must stop cleanly (exit 0) with a flush in
 *            progress.
 *
 * After each kill the objects so far are checked against the naming rule
 * (no two objects of a shard overlap). After the last round runneld runs
 * until both sinks' lag is 0; then, for k9sink, per shard the objects' ranges
 * are dense from 0 to the shard's end, each holding last - first + 1 lines;
 * for both, no two objects of one (shard, prefix) overlap, the lines add up
 * to the shards' end, and over all objects every acknowledged
 * record appears exactly once, every unacknowledged one (sent when the
 * broker died) at most once, nothing unknown. No sleep synchronises
 * anything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sinktest.h"
#include "testutil.h"
#include "tiertest.h"

#define STREAM "k9"
#define SINK "k9sink"   /* constant prefix: one object per flush */
#define MULTI "k9multi" /* prefix from a field: three objects per flush, PUT in parallel */
#define SHARDS 2
#define MAX_PER_ROUND 20000u
#define MAX_ROUNDS 200
#define PACE 256

static unsigned g_rounds = 10;
static uint64_t g_seed = 1;
static bool g_s3;
static bool g_term; /* "term" rounds too (argv[4] = with-term) */
static rn_sinkfx_t g_fx;
static char g_out[700]; /* the objects as files: the destination, or a mirror of the bucket */

typedef enum { REC_PENDING = 1, REC_ACKED, REC_FAILED } rec_state_t;
typedef struct rec {
  uint8_t state, seen;
  uint32_t shard;
  uint64_t offset;
} rec_t;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rec_t *recs[MAX_ROUNDS];
  uint32_t n[MAX_ROUNDS];
  uint64_t acked, failed, unreported, kill_at;
  pid_t pid;
  bool killed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  rec_t *r = opaque;
  pthread_mutex_lock(&g.mu);
  if (err) {
    r->state = REC_FAILED;
    g.failed++;
  } else {
    r->state = REC_ACKED;
    r->shard = shard;
    r->offset = offset;
    if (++g.acked == g.kill_at && !g.killed) {
      kill(g.pid, SIGKILL);
      g.killed = true;
    }
  }
  g.unreported--;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
}

static size_t make_value(uint32_t r, uint32_t q, char *buf, size_t cap) {
  uint64_t st = ((g_seed * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)r << 40) ^ q) | 1;
  (void)rn_test_rand(&st);
  size_t pad = (size_t)rn_test_rand_below(&st, 400);
  int n = snprintf(buf, cap, "{\"id\":\"r%u-%u\",\"round\":%u,\"seq\":%u,\"b\":%u,\"pad\":\"", r, q, r, q, q % 3);
  for (size_t i = 0; i < pad; i++) buf[n++] = (char)('a' + rn_test_rand_below(&st, 26));
  n += snprintf(buf + n, cap - (size_t)n, "\"}");
  return (size_t)n;
}

static void dest(char *out, size_t cap) {
  if (g_s3)
    snprintf(out, cap, "s3://%.32s/k9/", g_fx.peer.bucket);
  else
    snprintf(out, cap, "file://%s/", g_out);
}

/* A sink's objects as files under g_out (the destination, or a fresh mirror of the bucket's k9/). */
static void load_objects(const char *sink, rn_sf_objs_t *o) {
  if (g_s3) {
    rn_test_rmtree(g_out);
    rn_sf_mirror(&g_fx, "k9/", g_out);
  }
  rn_sf_objs_load(g_out, "", sink, SHARDS, o);
}

static void produce_and_kill(uint32_t round, uint64_t *rng) {
  rn_sinkfx_t *f = &g_fx;
  g.recs[round] = calloc(MAX_PER_ROUND, sizeof(rec_t));
  assert_non_null(g.recs[round]);
  unsigned mode = (unsigned)rn_test_rand_below(rng, g_term ? 4 : 3);
  uint64_t k = 0, m = 0;
  if (mode == 0) k = 50 + rn_test_rand_below(rng, 4000);
  if (mode == 1) k = 1 + rn_test_rand_below(rng, 8);
  if (mode >= 2) m = 200 + rn_test_rand_below(rng, 4000);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = (uint32_t)rn_test_rand_below(rng, 3);
  pc.max_batch_bytes = 16384;
  pc.close_timeout_ms = 0;
  pc.retry_backoff_ms = 10;
  pc.retry_backoff_max_ms = 50;
  rn_producer_t *p;
  rn_err_t err = rn_producer_new(f->cl, &pc, &p);
  if (err) fail_msg("producer: %s %s", rn_err_name(err), rn_last_error_message());
  pthread_mutex_lock(&g.mu);
  g.acked = g.failed = g.unreported = 0;
  g.killed = false;
  g.kill_at = mode == 0 ? k : 0;
  g.pid = f->br.pid;
  pthread_mutex_unlock(&g.mu);
  uint32_t limit = mode >= 2 ? (uint32_t)m : MAX_PER_ROUND;
  char buf[600], key[16];
  uint64_t objects_at = 0;
  unsigned polls = 0;
  for (uint32_t q = 0; q < limit; q++) {
    if (mode == 1 && q % 200 == 0) { /* the sink's progress picks the kill point */
      rn_sf_view_t v;
      rn_sf_describe(f, SINK, &v, NULL);
      polls++;
      if (v.objects >= k) {
        objects_at = v.objects;
        break;
      }
    }
    pthread_mutex_lock(&g.mu);
    while (!g.killed && g.unreported >= PACE) pthread_cond_wait(&g.cv, &g.mu);
    bool stop = g.killed || g.failed;
    if (!stop) {
      g.recs[round][q].state = REC_PENDING;
      g.n[round] = q + 1;
      g.unreported++;
    }
    pthread_mutex_unlock(&g.mu);
    if (stop) break;
    int kl = snprintf(key, sizeof key, "u%u", (q * 7u + round) % 61u);
    size_t len = make_value(round, q, buf, sizeof buf);
    err = rn_producer_send(p, STREAM, key, (size_t)kl, buf, len, on_delivery, &g.recs[round][q]);
    if (err) {
      pthread_mutex_lock(&g.mu);
      g.recs[round][q].state = 0;
      g.n[round] = q;
      g.unreported--;
      pthread_mutex_unlock(&g.mu);
      if (!g.killed) fail_msg("send %u: %s %s", q, rn_err_name(err), rn_last_error_message());
      break;
    }
  }
  bool saw_pending = false;
  if (mode >= 2) {
    err = rn_producer_flush(p, 120000);
    if (err) fail_msg("flush: %s %s", rn_err_name(err), rn_last_error_message());
    uint64_t until = rn_tt_now_ms() + 5000;
    while (!saw_pending && rn_tt_now_ms() < until) {
      json_t *doc;
      rn_sf_view_t v;
      rn_sf_describe(f, SINK, &v, &doc);
      polls++;
      size_t i;
      json_t *s;
      json_array_foreach(json_object_get(doc, "shards"), i, s) if (json_object_get(s, "pending_first")) saw_pending =
          true;
      json_decref(doc);
    }
  }
  if (mode == 1 && objects_at == 0) fail_msg("round %u: %u records sent and the sink wrote fewer than %" PRIu64
                                             " objects", round, g.n[round], k);
  pthread_mutex_lock(&g.mu);
  bool killed = g.killed;
  pthread_mutex_unlock(&g.mu);
  if (mode == 3) { /* a graceful stop mid-flush instead: it must exit 0 */
    int rc = rn_test_broker_stop(&f->br);
    if (rc != 0) fail_msg("round %u: SIGTERM mid-flush: runneld exited with status %d (want 0); see %s", round, rc,
                          f->br.log_path);
  }
  rn_test_broker_kill(&f->br); /* SIGKILL (again, if the callback did) and reap; nothing when stopped */
  rn_producer_destroy(p);       /* the rest fail */
  rn_client_destroy(f->cl);
  f->cl = NULL;
  pthread_mutex_lock(&g.mu);
  uint64_t acked = g.acked, unreported = g.unreported, failed = g.failed;
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(unreported, 0);
  if (mode == 0 && !killed) fail_msg("round %u: sent %u without reaching ack %" PRIu64, round, g.n[round], k);
  static const char *const names[] = {"ack", "objects", "flush", "term"};
  print_message("round %2u: mode %-7s %s%" PRIu64 "; sent %u, acked %" PRIu64 ", unacknowledged %" PRIu64
                "%s (%u describes)\n",
                round, names[mode], mode == 0 ? "kill at ack " : mode == 1 ? "kill after objects >= " : "records ",
                mode >= 2 ? m : k, g.n[round], acked, failed, mode >= 2 ? (saw_pending ? ", stopped mid-flush" :
                                                                            ", no flush seen in 5 s") : "",
                polls);
}

static void check_crash_state(uint32_t round) {
  rn_sf_objs_t o, om;
  load_objects(SINK, &o);
  rn_sf_objs_check_ranges(&o);
  load_objects(MULTI, &om);
  rn_sf_objs_check_ranges(&om);
  print_message("  after kill %2u: %zu + %zu objects, names and ranges fine; %zu temporary files%s%s\n", round, o.n,
                om.n, o.temps, o.temps ? ", e.g. " : "", o.temps ? o.temp_example : "");
  rn_sf_objs_free(&o);
  rn_sf_objs_free(&om);
}

typedef struct count_ctx {
  const char *key;
  uint64_t lines, unknown;
} count_ctx_t;

static void count_line(void *arg, const char *line, size_t len) {
  count_ctx_t *c = arg;
  c->lines++;
  unsigned r, q;
  char s[64];
  snprintf(s, sizeof s, "%.*s", (int)(len < 63 ? len : 63), line);
  if (sscanf(s, "{\"id\":\"r%u-%u\"", &r, &q) != 2 || r >= MAX_ROUNDS || q >= g.n[r] || !g.recs[r])
    fail_msg("%s: a line that was never produced: %.80s", c->key, s);
  rec_t *rec = &g.recs[r][q];
  char want[600];
  size_t wl = make_value(r, q, want, sizeof want);
  if (wl != len || memcmp(want, line, len) != 0) fail_msg("%s: record r%u-%u is not what was sent", c->key, r, q);
  if (rec->seen == 255) fail_msg("r%u-%u seen 255 times", r, q);
  rec->seen++;
}

/* Every acknowledged record in exactly one of sink's objects, others at
 * most once, total lines = the shards' end; dense: per shard the ranges
 * tile [0, end) and each object holds last - first + 1 lines (one object
 * per flush). */
static void check_sink(const char *sink, bool dense, uint64_t acked) {
  rn_sinkfx_t *f = &g_fx;
  rn_sf_wait_caught_up(f, sink, acked);
  rn_sf_view_t v;
  rn_sf_describe(f, sink, &v, NULL);
  rn_sf_objs_t o;
  load_objects(sink, &o);
  rn_sf_objs_check_ranges(&o);
  for (uint32_t r = 0; r < g_rounds; r++)
    for (uint32_t q = 0; q < g.n[r]; q++) g.recs[r][q].seen = 0;
  uint64_t next[SHARDS] = {0}, lines = 0;
  for (size_t i = 0; i < o.n; i++) {
    const rn_sf_obj_t *ob = &o.v[i];
    if (dense && ob->first != next[ob->shard])
      fail_msg("shard %u: object %s starts at %" PRIu64 ", the previous one ended at %" PRIu64 " (%s)", ob->shard,
               ob->key, ob->first, next[ob->shard], ob->first > next[ob->shard] ? "records missing" : "overlap");
    next[ob->shard] = ob->last + 1;
    count_ctx_t c = {.key = ob->key};
    uint64_t n = rn_sf_lines(ob->path, count_line, &c);
    if (dense && n != ob->last - ob->first + 1)
      fail_msg("object %s: %" PRIu64 " lines for the %" PRIu64 " offsets of its name", ob->key, n,
               ob->last - ob->first + 1);
    if (n > ob->last - ob->first + 1)
      fail_msg("object %s: %" PRIu64 " lines, more than the %" PRIu64 " offsets of its name", ob->key, n,
               ob->last - ob->first + 1);
    lines += n;
  }
  if (lines != v.end)
    fail_msg("%s: %" PRIu64 " lines in all objects; the shards end at %" PRIu64 " in all", sink, lines, v.end);
  uint64_t once = 0, unacked_in = 0;
  for (uint32_t r = 0; r < g_rounds; r++)
    for (uint32_t q = 0; q < g.n[r]; q++) {
      const rec_t *rec = &g.recs[r][q];
      if (rec->state == REC_ACKED && rec->seen != 1)
        fail_msg("%s: acknowledged record r%u-%u (shard %u offset %" PRIu64 ") is in %u objects (want exactly 1)",
                 sink, r, q, rec->shard, rec->offset, rec->seen);
      if (rec->state != REC_ACKED && rec->seen > 1)
        fail_msg("%s: unacknowledged record r%u-%u is in %u objects (at most 1)", sink, r, q, rec->seen);
      once += rec->state == REC_ACKED;
      unacked_in += rec->state != REC_ACKED && rec->seen;
    }
  print_message("%s after %u kills: %zu objects, %" PRIu64 " lines; all %" PRIu64 " acknowledged records exactly "
                "once, %" PRIu64 " unacknowledged ones stored and delivered once; %zu temporary files left%s%s\n",
                sink, g_rounds, o.n, lines, once, unacked_in, o.temps, o.temps ? ", e.g. " : "",
                o.temps ? o.temp_example : "");
  rn_sf_objs_free(&o);
}

static void check_final(void) {
  uint64_t acked = 0;
  for (uint32_t r = 0; r < g_rounds; r++)
    for (uint32_t q = 0; q < g.n[r]; q++) acked += g.recs[r][q].state == REC_ACKED;
  check_sink(SINK, true, acked);
  check_sink(MULTI, false, acked);
}

static void test_kill9(void **state) {
  (void)state;
  rn_sinkfx_t *f = &g_fx;
  uint64_t rng = g_seed * 0x9E3779B97F4A7C15ull | 1;
  print_message("seed %" PRIu64 ", %u rounds, destination %s\n", g_seed, g_rounds, g_s3 ? "s3rver" : "dir");
  for (uint32_t round = 0; round < g_rounds; round++) {
    rn_sf_broker_start(f);
    if (round == 0) {
      const char *sc[] = {"stream", "create", STREAM, "--shards", "2", NULL};
      free(rn_sf_ctl(f, sc));
      char to[800];
      dest(to, sizeof to);
      const char *kc[] = {"sink", "create", SINK, "--stream", STREAM, "--to", to, "--format", "ndjson", "--prefix",
                          "k9/", "--buffer-bytes", "64KiB", "--buffer-interval", "50ms", NULL};
      free(rn_sf_ctl(f, kc));
      const char *mc[] = {"sink", "create", MULTI, "--stream", STREAM, "--to", to, "--format", "ndjson", "--prefix",
                          "multi/b=!{field:b}/", "--buffer-bytes", "64KiB", "--buffer-interval", "50ms", NULL};
      free(rn_sf_ctl(f, mc));
    }
    produce_and_kill(round, &rng);
    check_crash_state(round);
  }
  rn_sf_broker_start(f);
  check_final();
}

int main(int argc, char **argv) {
  if (argc > 1) g_rounds = (unsigned)strtoul(argv[1], NULL, 10);
  if (argc > 2) g_seed = strtoull(argv[2], NULL, 10);
  if (argc > 3) g_s3 = strcmp(argv[3], "s3rver") == 0;
  if (argc > 4) g_term = strcmp(argv[4], "with-term") == 0;
  if (g_rounds < 1 || g_rounds > MAX_ROUNDS) {
    fprintf(stderr, "test_sink_kill9: 1 to %d rounds\n", MAX_ROUNDS);
    return 2;
  }
  if (!rn_sf_ctl_has_flag("sink", "create", "--buffer-interval")) {
    printf("SKIP: this runnelctl has no `sink create` (archive sinks, issue 14)\n");
    return 77;
  }
  char why[512];
  int rc = rn_sf_init(&g_fx, g_s3, why, sizeof why);
  if (rc != 0) {
    printf("SKIP: %s\n", why);
    rn_sf_finish(&g_fx, 0);
    return 77;
  }
  snprintf(g_out, sizeof g_out, "%s/out", g_fx.tmp);
  mkdir(g_out, 0755);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill9)};
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  failed += rn_sf_finish(&g_fx, failed);
  for (unsigned r = 0; r < MAX_ROUNDS; r++) free(g.recs[r]);
  return failed ? 1 : 0;
}
