/*
 * test_cluster_failover.c — a three-broker cluster on loopback: a real etcd
 * (/usr/bin/etcd, tests/support/etcd_proc.h) and three real runneld
 * started with --etcd, each on ports chosen at run time, stopped by PID.
 *
 *   1. A stream of replication 3 (min in-sync 2, durability sync) is created
 *      through one broker; every broker describes it with one leader and
 *      all three replicas in sync.
 *   2. An idempotent producer connected to a broker that does not lead the
 *      shard sends records (that broker forwards them to the leader);
 *      after the K-th acknowledgement the leader is SIGKILLed from the
 *      delivery callback, with produce requests still in flight. The
 *      producer keeps retrying through the failover: every record it sent
 *      is acknowledged in the end.
 *   3. The survivors elect a new leader. The time from the kill to the
 *      first acknowledgement of a record sent after it is printed
 *      (machine-readable: "failover_ms N"); a measurement, not an assertion.
 *   4. Read from offset 0 on the new leader, and through the follower
 *      (which forwards the fetch): every acknowledged record is there, at the offset its acknowledgement named, exactly once, and
 *      no record appears twice (two records at one offset or one record
 *      at two offsets are both failures).
 *   5. The old leader restarts: it rejoins as a follower (it truncates what
 *      it had beyond the new leader's history) and comes back into the
 *      in-sync set. Then the second leader is killed too: the third
 *      leader (possibly the restarted one) still has every acknowledged
 *      record, each once, at the same offsets.
 *
 * All waiting is on a described condition with a deadline that only bounds
 * a failure. Skips (77) without /usr/bin/etcd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker_proc.h"
#include "etcd_proc.h"
#include "runnel/runnel.h"
#include "testutil.h"

#define STREAM "orders"
#define NB 3
#define DEADLINE_MS 60000
#define KILL_AT 600
#define MAX_RECS 4000

static char *g_tmp;
static rn_etcd_proc_t g_etcd;
static rn_test_broker_t g_br[NB + 1]; /* by broker id */
static char g_dir[NB + 1][600];

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A pause between polls of a condition (never a synchronisation: every
 * wait re-checks its condition and is bounded by a deadline). */
static void poll_pause(void) {
  struct timespec ts = {0, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

static void start_broker(uint32_t id) {
  char idbuf[16];
  snprintf(idbuf, sizeof idbuf, "%u", id);
  const char *args[] = {"--etcd", g_etcd.url, "--broker-id", idbuf, "--set", "cluster_lease=2s",
                        "--set", "replica_lag=2s", NULL};
  if (rn_test_broker_start(&g_br[id], g_dir[id], args) != 0)
    fail_msg("broker %u did not start; see %s", id, g_br[id].log_path);
}

static rn_client_t *client_for(uint32_t id) {
  rn_client_conf_t cc;
  rn_client_conf_init(&cc);
  cc.broker = g_br[id].addr;
  cc.request_timeout_ms = 10000;
  cc.reconnect_backoff_ms = 10;
  cc.reconnect_backoff_max_ms = 100;
  rn_client_t *cl;
  rn_err_t err = rn_client_new(&cc, &cl);
  if (err) fail_msg("client for broker %u: %s %s", id, rn_err_name(err), rn_last_error_message());
  return cl;
}

/* The shard as broker id describes it (leader 0 when it cannot say). */
static rn_shard_info_t describe_on(uint32_t id) {
  rn_shard_info_t si;
  memset(&si, 0, sizeof si);
  rn_client_t *cl = client_for(id);
  rn_stream_desc_t *d = NULL;
  if (rn_stream_describe(cl, STREAM, &d) == 0 && d->shard_count == 1) si = d->shards[0];
  rn_stream_desc_free(d);
  rn_client_destroy(cl);
  return si;
}

/* Wait until every running broker describes the shard with one leader
 * (other than `not`), at least `isr` in sync. Returns that leader. */
static uint32_t wait_leader(uint32_t not, uint32_t isr, uint64_t deadline) {
  for (;;) {
    uint32_t leader = 0;
    bool agree = true;
    for (uint32_t id = 1; id <= NB && agree; id++) {
      if (!g_br[id].pid) continue;
      rn_shard_info_t si = describe_on(id);
      if (si.leader == 0 || si.leader == not || si.isr_count < isr || !g_br[si.leader].pid ||
          (leader && si.leader != leader))
        agree = false;
      leader = si.leader;
    }
    if (agree && leader) return leader;
    if (now_ms() > deadline) fail_msg("no agreed leader (other than %u, %u in sync) within the deadline", not, isr);
    poll_pause();
  }
}

/* ---- the produce phase --------------------------------------------------------- */

typedef struct rec {
  int state; /* 0 unsent, 1 pending, 2 acked, 3 failed */
  uint64_t offset;
  unsigned seen;
  uint64_t sent_ms;
} rec_t;

static struct {
  pthread_mutex_t mu;
  rec_t recs[MAX_RECS];
  uint32_t sent, acked;
  pid_t kill_pid;
  bool killed;
  uint64_t killed_ms, first_ack_after_ms;
  uint32_t failed;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_delivery(rn_err_t err, uint32_t shard, uint64_t offset, void *opaque) {
  (void)shard;
  rec_t *r = opaque;
  pthread_mutex_lock(&g.mu);
  if (err) {
    r->state = 3;
    g.failed++;
  } else {
    r->state = 2;
    r->offset = offset;
    if (g.killed && !g.first_ack_after_ms && r->sent_ms > g.killed_ms) g.first_ack_after_ms = now_ms();
    if (++g.acked == KILL_AT && !g.killed) {
      kill(g.kill_pid, SIGKILL);
      g.killed = true;
      g.killed_ms = now_ms();
    }
  }
  pthread_mutex_unlock(&g.mu);
}

static size_t make_value(uint32_t q, char *buf, size_t cap) {
  return (size_t)snprintf(buf, cap, "{\"id\":%u,\"pad\":\"%0*u\"}", q, (int)(q % 200), q);
}

/* Produce 2 * KILL_AT records through broker `via` (which forwards to
 * the leader when it is not the leader); the leader dies at ack KILL_AT. */
static void produce_through_kill(uint32_t via, uint32_t leader) {
  rn_client_t *cl = client_for(via);
  rn_producer_conf_t pc;
  rn_producer_conf_init(&pc);
  pc.linger_ms = 1;
  pc.max_batch_bytes = 4096;
  pc.delivery_timeout_ms = 60000; /* retried through the failover */
  pc.retry_backoff_ms = 20;
  pc.retry_backoff_max_ms = 200;
  rn_producer_t *p;
  rn_err_t err = rn_producer_new(cl, &pc, &p);
  if (err) fail_msg("producer: %s %s", rn_err_name(err), rn_last_error_message());
  pthread_mutex_lock(&g.mu);
  g.kill_pid = g_br[leader].pid;
  pthread_mutex_unlock(&g.mu);
  char buf[300];
  for (uint32_t q = 0; q < 2 * KILL_AT; q++) {
    pthread_mutex_lock(&g.mu);
    g.recs[q].state = 1;
    g.recs[q].sent_ms = now_ms();
    g.sent = q + 1;
    pthread_mutex_unlock(&g.mu);
    size_t len = make_value(q, buf, sizeof buf);
    err = rn_producer_send(p, STREAM, "k", 1, buf, len, on_delivery, &g.recs[q]);
    if (err) fail_msg("send %u: %s %s", q, rn_err_name(err), rn_last_error_message());
    if (q % 64 == 63) (void)rn_producer_flush(p, 120000); /* sync produce: a window of 64 at a time */
  }
  err = rn_producer_flush(p, 120000);
  if (err) fail_msg("flush: %s %s", rn_err_name(err), rn_last_error_message());
  rn_producer_destroy(p);
  rn_client_destroy(cl);
  rn_test_broker_kill(&g_br[leader]); /* reap it (killed from the callback) */
  pthread_mutex_lock(&g.mu);
  bool killed = g.killed;
  uint32_t acked = g.acked, sent = g.sent, failed = g.failed;
  pthread_mutex_unlock(&g.mu);
  if (!killed) fail_msg("sent %u records, %u acknowledged, without reaching the kill at %u", sent, acked, KILL_AT);
  print_message("sent %u through broker %u, acknowledged %u, failed %u; leader %u killed at ack %u\n", sent, via,
                acked, failed, leader, KILL_AT);
  assert_int_equal(failed, 0);
  assert_int_equal(acked, sent);
}

/* The first produce the new leader acknowledges, retried on retriable
 * errors until the deadline. Returns its offset. */
static uint64_t produce_one(uint32_t leader, uint32_t q, uint64_t deadline) {
  char buf[300];
  size_t len = make_value(q, buf, sizeof buf);
  for (;;) {
    rn_client_t *cl = client_for(leader);
    rn_producer_conf_t pc;
    rn_producer_conf_init(&pc);
    pc.linger_ms = 0;
    pc.delivery_timeout_ms = 2000;
    pc.retry_backoff_ms = 10;
    pc.retry_backoff_max_ms = 50;
    rn_producer_t *p;
    rn_err_t err = rn_producer_new(cl, &pc, &p);
    if (err) fail_msg("producer: %s %s", rn_err_name(err), rn_last_error_message());
    pthread_mutex_lock(&g.mu);
    g.recs[q].state = 1;
    pthread_mutex_unlock(&g.mu);
    err = rn_producer_send(p, STREAM, "k", 1, buf, len, on_delivery, &g.recs[q]);
    if (!err) err = rn_producer_flush(p, 10000);
    rn_producer_destroy(p);
    rn_client_destroy(cl);
    pthread_mutex_lock(&g.mu);
    int st = g.recs[q].state;
    uint64_t off = g.recs[q].offset;
    pthread_mutex_unlock(&g.mu);
    if (!err && st == 2) return off;
    if (now_ms() > deadline) fail_msg("broker %u acknowledged no produce within the deadline", leader);
    poll_pause();
  }
}

/* ---- the check ------------------------------------------------------------------- */

/* Read [0, the leader's committed end) through broker id: every
 * acknowledged record once, at its offset. */
static void check_log(uint32_t id, uint32_t leader, uint32_t nrecs, const char *when) {
  rn_client_t *cl = client_for(id);
  rn_shard_info_t si = describe_on(leader);
  rn_consumer_t *c;
  rn_err_t err = rn_consumer_new(cl, STREAM, 0, RN_POS_OFFSET, 0, &c);
  if (err) fail_msg("consumer: %s", rn_err_name(err));
  for (uint32_t q = 0; q < nrecs; q++) g.recs[q].seen = 0;
  uint64_t n = 0, expect = 0;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (expect < si.end_offset) {
    const rn_record_t *r;
    err = rn_consumer_poll(c, 200, &r);
    if (err == RN_EAGAIN && now_ms() < deadline) continue;
    if (err) fail_msg("%s: poll at %" PRIu64 " of %" PRIu64 ": %s %s", when, expect, si.end_offset, rn_err_name(err),
                      rn_last_error_message());
    if (r->offset != expect) fail_msg("%s: offset %" PRIu64 " after %" PRIu64 " (a gap)", when, r->offset, expect);
    expect = r->offset + 1;
    unsigned q;
    if (sscanf((const char *)r->value, "{\"id\":%u", &q) != 1 || q >= nrecs)
      fail_msg("%s: offset %" PRIu64 ": a record that was never produced", when, r->offset);
    char want[300];
    size_t wl = make_value(q, want, sizeof want);
    if (wl != r->value_len || memcmp(want, r->value, wl) != 0)
      fail_msg("%s: offset %" PRIu64 ": record %u is not what was sent", when, r->offset, q);
    if (g.recs[q].seen++) fail_msg("%s: duplicate: record %u again at offset %" PRIu64, when, q, r->offset);
    if (g.recs[q].state == 2 && g.recs[q].offset != r->offset)
      fail_msg("%s: inconsistent offsets: record %u acknowledged at %" PRIu64 ", stored at %" PRIu64, when, q,
               g.recs[q].offset, r->offset);
    n++;
  }
  uint32_t lost = 0, unacked_kept = 0;
  for (uint32_t q = 0; q < nrecs; q++) {
    if (g.recs[q].state == 2 && !g.recs[q].seen) {
      if (!lost) print_message("%s: lost-write: record %u (acknowledged at %" PRIu64 ")\n", when, q, g.recs[q].offset);
      lost++;
    }
    if (g.recs[q].state != 2 && g.recs[q].seen) unacked_kept++;
  }
  print_message("%s: broker %u holds %" PRIu64 " records; lost-write 0? %s (%u), duplicate 0, "
                "unacknowledged but kept %u\n",
                when, id, n, lost ? "NO" : "yes", lost, unacked_kept);
  assert_int_equal(lost, 0);
  rn_consumer_destroy(c);
  rn_client_destroy(cl);
}

static void test_failover(void **state) {
  (void)state;
  g_tmp = rn_test_tmpdir();
  char why[256], dir[700];
  snprintf(dir, sizeof dir, "%s/etcd", g_tmp);
  if (rn_etcd_proc_start(&g_etcd, dir, why, sizeof why)) fail_msg("etcd: %s", why);
  for (uint32_t id = 1; id <= NB; id++) {
    snprintf(g_dir[id], sizeof g_dir[id], "%s/b%u", g_tmp, id);
    start_broker(id);
  }
  /* 1. create (retried while the brokers are still registering) */
  uint64_t deadline = now_ms() + DEADLINE_MS;
  rn_client_t *cl = client_for(1);
  for (;;) {
    rn_stream_config_t sc = {.name = STREAM, .shard_count = 1, .replication = 3, .min_insync = 2,
                             .durability = RN_DURABILITY_SYNC};
    rn_err_t err = rn_stream_create(cl, &sc, NULL);
    if (err == 0) break;
    if (!rn_err_retriable(err) || now_ms() > deadline)
      fail_msg("create: %s %s", rn_err_name(err), rn_last_error_message());
    poll_pause();
  }
  rn_client_destroy(cl);
  uint32_t l1 = wait_leader(0, 3, now_ms() + DEADLINE_MS);
  print_message("leader %u, 3 of 3 in sync on every broker\n", l1);

  /* 2-3. kill the leader mid-produce, through a broker that forwards */
  uint32_t via = l1 % NB + 1;
  produce_through_kill(via, l1);
  uint32_t l2 = wait_leader(l1, 2, now_ms() + DEADLINE_MS);
  uint32_t nrecs = g.sent;
  print_message("failover_ms %" PRIu64 " (kill -9 of broker %u to the first acknowledgement of a record sent "
                "after it; broker %u leads now)\n",
                g.first_ack_after_ms - g.killed_ms, l1, l2);

  /* 4. every acknowledged record on the new leader, once, at its offset */
  check_log(l2, l2, nrecs, "after the first failover");
  for (uint32_t id = 1; id <= NB; id++) /* any broker serves a consumer: the follower forwards the fetch */
    if (id != l2 && g_br[id].pid) check_log(id, l2, nrecs, "read through the follower");

  /* 5. the old leader rejoins and catches up; then the second leader dies */
  start_broker(l1);
  wait_leader(0, 3, now_ms() + DEADLINE_MS);
  rn_test_broker_kill(&g_br[l2]);
  uint32_t l3 = wait_leader(l2, 2, now_ms() + DEADLINE_MS);
  produce_one(l3, nrecs, now_ms() + DEADLINE_MS);
  nrecs++;
  check_log(l3, l3, nrecs, "after the second failover");

  for (uint32_t id = 1; id <= NB; id++)
    if (g_br[id].pid) {
      int rc = rn_test_broker_stop(&g_br[id]);
      if (rc != 0) fail_msg("broker %u exited with status %d (want 0); see %s", id, rc, g_br[id].log_path);
    }
  rn_etcd_proc_stop(&g_etcd, false);
  const char *keep = getenv("RUNNEL_TEST_KEEP");
  if (!keep || !*keep) rn_test_rmtree(g_tmp);
  free(g_tmp);
}

/* After a failed assertion too: nothing keeps running. */
static int teardown(void **state) {
  (void)state;
  for (uint32_t id = 1; id <= NB; id++) rn_test_broker_kill(&g_br[id]);
  if (g_etcd.pid) rn_etcd_proc_stop(&g_etcd, true);
  return 0;
}

int main(void) {
  if (!rn_etcd_proc_available()) {
    fprintf(stderr, "SKIP: %s is not installed (Debian etcd-server; tools/deps.sh installs it)\n", RN_ETCD_BIN);
    return 77;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_failover, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
